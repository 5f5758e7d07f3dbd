"""Per-prediction explanations (docs/explanations.md): exact TreeSHAP and linear contributions, a budgeted
model-agnostic method over a signed background sample, summed back to the features the client sent."""
