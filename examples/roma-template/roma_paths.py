"""Where the agent's files live: the same absolute path on the host and in the sandbox."""

import os


def storage_base() -> str:
    return os.environ.get("STORAGE_BASE_PATH", "/opt/sentient")


def executions_dir(execution_id: str = "") -> str:
    base = os.path.join(storage_base(), "executions")
    return os.path.join(base, execution_id) if execution_id else base
