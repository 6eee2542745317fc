"""A small async agent toolkit in the seed's shape, on the unmodified `e2b-code-interpreter` SDK.

One sandbox per agent execution, reused across calls (Python state persists in the default
context), health-checked before each call and recreated when it died. Files are shared with
the host through the bucket at the *same absolute path* on both sides:
`<STORAGE_BASE_PATH>/executions/<execution_id>/{artifacts,temp,results/plots,results/reports,
outputs,logs}`; the host writes a temp file and renames it into place, so a reader never sees
half a file.

It reaches the server the way the SDK does (`E2B_API_URL`/`E2B_SANDBOX_URL` or `E2B_DOMAIN`,
and `E2B_API_KEY`). The bucket's keys are not needed here: the server mounts the bucket in every
sandbox, and the host mounts it itself (`bulkhead mount BUCKET /opt/sentient`).

    toolkit = SandboxToolkit(template="code-interpreter")
    out = await toolkit.run_python("exec-1", "import math; math.pi")
    await toolkit.close_all()
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from dataclasses import dataclass, field

from e2b import CommandExitException
from e2b_code_interpreter import AsyncSandbox

EXECUTION_DIRS = ("artifacts", "temp", "results/plots", "results/reports", "outputs", "logs")


@dataclass
class PythonResult:
    """What a code cell gave: its results' text, PNGs and HTML, its output and its error."""

    text: list[str] = field(default_factory=list)
    png: list[bytes] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    error: str | None = None


@dataclass
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str


class SandboxToolkit:
    """Run Python, run a command, upload, download, list files; one sandbox per execution."""

    def __init__(self, template: str = "code-interpreter", timeout: int = 300,
                 envs: dict[str, str] | None = None, storage_base: str | None = None):
        self.template = template
        self.timeout = timeout
        self.storage_base = storage_base or os.environ.get("STORAGE_BASE_PATH", "/opt/sentient")
        self.envs = {"STORAGE_BASE_PATH": self.storage_base, **(envs or {})}
        self._sandboxes: dict[str, AsyncSandbox] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.recreated = 0

    # -- sandboxes -------------------------------------------------------------------------

    async def sandbox(self, execution_id: str) -> AsyncSandbox:
        """The execution's sandbox: the same one while it lives, a new one once it died."""
        lock = self._locks.setdefault(execution_id, asyncio.Lock())
        async with lock:
            sbx = self._sandboxes.get(execution_id)
            if sbx is not None:
                try:
                    if await sbx.is_running():
                        return sbx
                except Exception:  # noqa: BLE001 - a dead or unreachable sandbox is replaced
                    pass
                self.recreated += 1
            sbx = await AsyncSandbox.create(template=self.template, timeout=self.timeout,
                                            envs=self.envs)
            self._sandboxes[execution_id] = sbx
            return sbx

    async def close(self, execution_id: str) -> None:
        sbx = self._sandboxes.pop(execution_id, None)
        if sbx is not None:
            try:
                await sbx.kill()
            except Exception:  # noqa: BLE001 - already gone
                pass

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close(e) for e in list(self._sandboxes)))

    # -- tools -----------------------------------------------------------------------------

    async def run_python(self, execution_id: str, code: str, timeout: float = 120) -> PythonResult:
        sbx = await self.sandbox(execution_id)
        ex = await sbx.run_code(code, timeout=timeout)
        out = PythonResult(stdout="".join(ex.logs.stdout), stderr="".join(ex.logs.stderr))
        for r in ex.results:
            if r.text is not None:
                out.text.append(r.text)
            if r.png is not None:
                out.png.append(base64.b64decode(r.png))
            if r.html is not None:
                out.html.append(r.html)
        if ex.error is not None:
            out.error = f"{ex.error.name}: {ex.error.value}"
        return out

    async def run_command(self, execution_id: str, cmd: str, timeout: float = 60) -> CommandResult:
        sbx = await self.sandbox(execution_id)
        try:
            r = await sbx.commands.run(cmd, timeout=timeout)
        except CommandExitException as e:
            return CommandResult(e.exit_code, e.stdout, e.stderr)
        return CommandResult(r.exit_code, r.stdout, r.stderr)

    async def upload(self, execution_id: str, path: str, data: bytes) -> None:
        sbx = await self.sandbox(execution_id)
        await sbx.files.write(path, data)

    async def download(self, execution_id: str, path: str) -> bytes:
        sbx = await self.sandbox(execution_id)
        return bytes(await sbx.files.read(path, format="bytes"))

    async def list_files(self, execution_id: str, path: str) -> list[str]:
        sbx = await self.sandbox(execution_id)
        return sorted(e.name for e in await sbx.files.list(path))

    # -- the shared storage, from the host ------------------------------------------------

    def execution_dir(self, execution_id: str) -> str:
        """`<storage>/executions/<id>` with its sub-directories, made on the host's mount."""
        root = os.path.join(self.storage_base, "executions", execution_id)
        for d in EXECUTION_DIRS:
            os.makedirs(os.path.join(root, d), exist_ok=True)
        return root

    @staticmethod
    def host_write(path: str, data: bytes) -> None:
        """Writes `path` on the host whole or not at all: a temp file, then a rename."""
        tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


async def _demo() -> None:
    toolkit = SandboxToolkit()
    try:
        r = await toolkit.run_python("demo", "import sys; sys.version.split()[0]")
        print("python", r.text)
        print(await toolkit.run_command("demo", "uname -sr"))
    finally:
        await toolkit.close_all()


if __name__ == "__main__":
    asyncio.run(_demo())
