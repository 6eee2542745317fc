"""What differs between the SDK releases the suite runs against (docs/COMPATIBILITY.md),
on the test side: exception names that later releases split out, and create options whose
defaults changed. The server absorbs the rest."""

import inspect

import e2b
from e2b import NotFoundException, SandboxException

# e2b < 2.3 raises one NotFoundException for a missing sandbox and a missing file.
SandboxNotFoundException = getattr(e2b, "SandboxNotFoundException", NotFoundException)
FileNotFoundException = getattr(e2b, "FileNotFoundException", NotFoundException)
# ... and a SandboxException (with the proxy's 502 message) for a sandbox that is gone.
SandboxNotRunningException = getattr(e2b, "SandboxNotRunningException", SandboxException)

# e2b 2.2 sends `allow_internet_access: true` on every create unless told otherwise (later
# releases omit it). Sandboxes here have loopback networking only, so the suite asks for
# that explicitly where the default would ask for more.
_default = inspect.signature(e2b.Sandbox.create).parameters.get("allow_internet_access")
CREATE = {"allow_internet_access": False} if _default and _default.default is True else {}
