"""moot.executors: run the code agents write, locally, in pooled Docker sandboxes, or faked."""

from ._base import Executor, ExecutorSession, WorkDir
from ._docker import DockerExecutor, Mount, reap_leftovers
from ._errors import (
    DockerUnavailableError,
    ExecutorClosedError,
    ExecutorConfigError,
    ExecutorError,
    ImageError,
    InvalidCodeError,
    LeaseTimeoutError,
    PackageNameError,
    SandboxError,
    SmokeImportError,
    UnsafePathError,
)
from ._extract import extract_code_blocks
from ._files import read_work_file, restore_work_files, scan_work_dir
from ._function import CodeFunction, FunctionExecutor
from ._image import (
    build_image,
    check_image,
    image_exists,
    image_tag,
    open_docker,
    profiles,
    resolve_packages,
)
from ._keys import key_dir_name
from ._local import LocalExecutor
from ._types import CodeBlock, CodeResult, format_results

__all__ = [
    "CodeBlock",
    "CodeFunction",
    "CodeResult",
    "DockerExecutor",
    "DockerUnavailableError",
    "Executor",
    "ExecutorClosedError",
    "ExecutorConfigError",
    "ExecutorError",
    "ExecutorSession",
    "FunctionExecutor",
    "ImageError",
    "InvalidCodeError",
    "LeaseTimeoutError",
    "LocalExecutor",
    "Mount",
    "PackageNameError",
    "SandboxError",
    "SmokeImportError",
    "UnsafePathError",
    "WorkDir",
    "build_image",
    "check_image",
    "extract_code_blocks",
    "format_results",
    "image_exists",
    "image_tag",
    "key_dir_name",
    "open_docker",
    "profiles",
    "read_work_file",
    "reap_leftovers",
    "resolve_packages",
    "restore_work_files",
    "scan_work_dir",
]
