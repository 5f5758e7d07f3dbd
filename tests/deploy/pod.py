"""Run a rendered pod's container locally: its volumes become folders, its paths and environment follow them."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.deploy.manifests import find


@dataclass
class LocalPod:
    """A pod spec's volumes as folders under `root`; objects the manifests only reference come from `supplied`."""

    root: Path
    docs: list[dict[str, Any]]
    supplied: dict[str, dict[str, bytes]] = field(default_factory=dict)
    mounts: dict[str, Path] = field(default_factory=dict)

    def mount(self, pod_spec: dict[str, Any], container: dict[str, Any]) -> None:
        volumes = {volume["name"]: volume for volume in pod_spec.get("volumes", [])}
        for item in container.get("volumeMounts", []):
            folder = self.root / item["mountPath"].lstrip("/")
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in self._contents(volumes[item["name"]]).items():
                (folder / name).write_bytes(data)
            self.mounts[item["mountPath"]] = folder

    def path(self, value: str) -> str:
        """`value` with every mounted path replaced by its local folder (longest mount first)."""
        if not self.mounts:
            return value
        pattern = "|".join(re.escape(mount) for mount in sorted(self.mounts, key=len, reverse=True))
        return re.sub(rf"(?<![\w./-])({pattern})(?=/|\b|$)", lambda match: str(self.mounts[match.group(1)]), value)

    def environment(self, container: dict[str, Any]) -> dict[str, str]:
        """The container's variables; a `secretKeyRef` / `configMapKeyRef` reads the rendered or supplied object."""
        return {item["name"]: self._value(item) for item in container.get("env", [])}

    def _value(self, item: dict[str, Any]) -> str:
        if "valueFrom" not in item:
            return self.path(item["value"])
        source = item["valueFrom"]
        kind, reference = ("Secret", source["secretKeyRef"]) if "secretKeyRef" in source else ("ConfigMap", source["configMapKeyRef"])
        contents = self._object(kind, reference["name"], optional=reference.get("optional", False))
        return contents[reference["key"]].decode()

    def _contents(self, volume: dict[str, Any]) -> dict[str, bytes]:
        if "emptyDir" in volume:
            return {}
        if "configMap" in volume:
            return self._object("ConfigMap", volume["configMap"]["name"], optional=volume["configMap"].get("optional", False))
        return self._object("Secret", volume["secret"]["secretName"], optional=volume["secret"].get("optional", False))

    def _object(self, kind: str, name: str, *, optional: bool) -> dict[str, bytes]:
        if name in self.supplied:
            return self.supplied[name]
        if not any(doc["kind"] == kind and doc["metadata"]["name"] == name for doc in self.docs):
            assert optional, f"{kind} {name} is neither rendered nor supplied"
            return {}
        doc = find(self.docs, kind, name)
        contents = {key: value.encode() for key, value in (doc.get("data") if kind == "ConfigMap" else doc.get("stringData") or {}).items()}
        encoded = doc.get("binaryData" if kind == "ConfigMap" else "data") or {}
        contents.update({key: base64.b64decode(value) for key, value in encoded.items()})
        return contents
