"""Per lease: the next lease of a pooled container sees nothing the previous lease left behind.

Every channel a job can write is tried from inside a real container: files in /work, /tmp and
/dev/shm, POSIX message queues, SysV shared memory, message queues and semaphores, and background
processes. A pool of one makes the second lease land on the same container.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from docker_helpers import pool_containers

from moot.executors import CodeBlock
from moot.executors._runner import KERNEL_DIR

if TYPE_CHECKING:
    import aiodocker
    from docker_helpers import DockerFactory

pytestmark = pytest.mark.docker

# Leave something behind on every channel, and report what was made so the test knows it worked.
LEAVE_EVERYTHING = r"""
import ctypes, json, os, subprocess

libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.mq_open.restype = ctypes.c_int
IPC_CREAT = 0o1000
made = {}

shmid = libc.shmget(0x4D4F01, 4096, IPC_CREAT | 0o666)
address = libc.shmat(shmid, None, 0)
ctypes.memmove(address, b"secret", 6)
libc.shmdt(ctypes.c_void_p(address))
made["shm"] = shmid

class Message(ctypes.Structure):
    _fields_ = [("mtype", ctypes.c_long), ("text", ctypes.c_char * 16)]

msqid = libc.msgget(0x4D4F02, IPC_CREAT | 0o666)
made["msg_sent"] = libc.msgsnd(msqid, ctypes.byref(Message(1, b"secret")), 16, 0)
made["msg"] = msqid
made["sem"] = libc.semget(0x4D4F03, 1, IPC_CREAT | 0o666)

mqd = libc.mq_open(b"/leak", os.O_CREAT | os.O_RDWR, 0o600, None)
made["mq_sent"] = libc.mq_send(mqd, b"secret", 6, 0)
fd = os.open("/dev/mqueue/leak2", os.O_CREAT | os.O_RDWR, 0o644)
os.close(fd)

for path in ("/work/leak", "/tmp/leak", "/dev/shm/leak", "/work/.hidden", "/tmp/.hidden"):
    with open(path, "w") as handle:
        handle.write("secret")
for base in ("/work", "/tmp", "/dev/shm"):
    os.makedirs(base + "/locked/deep")
    open(base + "/locked/deep/leak", "w").close()
    os.chmod(base + "/locked/deep", 0o500)
    os.chmod(base + "/locked", 0o000)

subprocess.Popen(
    ["/bin/sh", "-c", "trap '' HUP TERM; while :; do sleep 1; done"],
    start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        import time
        while True:
            time.sleep(0.05)
    os._exit(0)

made["shm_dir"] = sorted(os.listdir("/dev/shm"))
made["mqueue"] = sorted(os.listdir("/dev/mqueue"))
print(json.dumps(made))
"""

# What a fresh lease can see of every channel.
LOOK_EVERYWHERE = r"""
import ctypes, json, os

libc = ctypes.CDLL(None, use_errno=True)
me = os.getpid()
others = []
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) != me:
        try:
            status = open("/proc/%s/status" % pid).read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields["Uid"].split()[0] == str(os.getuid()) and "Z" not in fields["State"]:
            others.append(open("/proc/%s/cmdline" % pid, "rb").read().decode(errors="replace"))
seen = {
    "work": sorted(os.listdir("/work")),
    "tmp": sorted(os.listdir("/tmp")),
    "shm_dir": sorted(os.listdir("/dev/shm")),
    "mqueue": sorted(os.listdir("/dev/mqueue")),
    "sysvipc": {
        kind: open("/proc/sysvipc/" + kind).read().splitlines()[1:]
        for kind in ("shm", "msg", "sem")
    },
    "by_key": [libc.shmget(0x4D4F01, 0, 0), libc.msgget(0x4D4F02, 0), libc.semget(0x4D4F03, 0, 0)],
    "processes": [c for c in others if "job_main" not in c],
}
print(json.dumps(seen))
"""

NOTHING = {
    "work": [],
    "tmp": [],
    "shm_dir": [],
    "mqueue": [],
    "sysvipc": {"shm": [], "msg": [], "sem": []},
    "by_key": [-1, -1, -1],
    "processes": [],
}


@pytest.mark.parametrize("mode", ["spawn", "fork"])
async def test_the_next_lease_of_a_container_sees_nothing_the_last_one_left(
    make_docker: DockerFactory, docker: aiodocker.Docker, mode: str
) -> None:
    async with make_docker(pool_size=1, mode=mode) as executor:
        (before,) = await pool_containers(docker, executor)
        async with executor.session() as first:
            left = await first.run(CodeBlock(LEAVE_EVERYTHING, "python"))
            assert left.exit_code == 0, left.stderr
            made = json.loads(left.stdout)
            assert min(made["shm"], made["msg"], made["sem"]) >= 0, made
            assert made["msg_sent"] == made["mq_sent"] == 0, made
            assert made["shm_dir"] == ["leak", "locked"]
            assert made["mqueue"] == ["leak", "leak2"]
            same_lease = await first.run(CodeBlock(LOOK_EVERYWHERE, "python"))
        assert json.loads(same_lease.stdout)["by_key"] == [made["shm"], made["msg"], made["sem"]]
        async with executor.session() as second:
            seen = await second.run(CodeBlock(LOOK_EVERYWHERE, "python"))
        (after,) = await pool_containers(docker, executor)
    assert seen.exit_code == 0, seen.stderr
    assert json.loads(seen.stdout) == NOTHING
    assert after.id == before.id  # wiped in place, not replaced


FIND_WRITABLE = r"""
import os, stat

found = []
for root, dirs, files in os.walk("/", topdown=True):
    if root in ("/proc", "/sys"):
        dirs[:] = []
        continue
    for name in dirs + files:
        path = os.path.join(root, name)
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISCHR(info.st_mode) or stat.S_ISLNK(info.st_mode):
            continue  # devices such as /dev/null keep nothing; links are not places
        if os.access(path, os.W_OK):
            found.append(path)
print("\n".join(sorted(found)))
"""


async def test_every_place_a_job_can_write_is_one_the_wipe_empties(
    make_docker: DockerFactory, sandbox_mode: str
) -> None:
    async with make_docker(pool_size=1) as executor, executor.session() as session:
        result = await session.run(CodeBlock(FIND_WRITABLE, "python"))
    found = result.stdout.split()
    if sandbox_mode == "kernel":  # the kernel's own dir (sockets, IPython state), wiped whole
        assert KERNEL_DIR in found
        found = [path for path in found if not path.startswith(KERNEL_DIR + "/")]
        found.remove(KERNEL_DIR)
    assert found == ["/dev/mqueue", "/dev/shm", "/tmp", "/work"]


ADD_KEY = r"""
import ctypes, os, platform
number = {"x86_64": 248, "aarch64": 217}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
made = libc.syscall(number, b"user", b"moot-leak", b"secret", 6, -3)  # the user keyring
print(made, os.strerror(ctypes.get_errno()))
"""


async def test_kernel_keyrings_are_closed_to_jobs(make_docker: DockerFactory) -> None:
    async with make_docker(pool_size=1) as executor, executor.session() as session:
        result = await session.run(CodeBlock(ADD_KEY, "python"))
    assert result.stdout == "-1 Operation not permitted\n"  # seccomp: no key survives a lease
