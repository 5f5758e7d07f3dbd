"""The loaded model: validated inputs in, predictions as arrays out, from the reference model or its compiled form."""
