"""``POST /v1/apps/{app}/machines/{id}/exec``: Fly's exec, answered by the machine's emulated shell.

Fly (reference fly-machines.md §3.2, spec ``Machines_exec``): body ``{command: [..], timeout?, stdin?,
container?}`` (``cmd``, a string, is deprecated and still accepted); answer 200 ``{exit_code,
exit_signal, stdout, stderr}`` — 200 EVEN WHEN THE COMMAND FAILED: read ``exit_code``. Exec is a
machine action: the per-machine bucket of 1 req/s, burst 3 applies (``ratelimit``).

Where Fly is undocumented the emulator is strict, so code built on it does not rely on kindness:

* a machine that is not ``started`` (stopped, suspended, created, booting, replacing, failed ...)
  refuses with 412 ``failed_precondition`` "unable to exec on machine from current state: '<state>'".
  Exec never starts a machine: a sleeping (autostopped) agent stays asleep;
* while a lease is held, exec without the holder's nonce (header ``fly-machine-lease-nonce``) is
  refused with the lease-conflict 409 (the reference: "reportedly refused while another client holds
  a lease"; ``EmulatorOptions.exec_respects_leases=False`` turns this off);
* ``host_status != ok``: 503, as every call that needs the host agent;
* ``timeout`` must be a non-negative integer (seconds); commands answer at once (no modelled run time).

What runs: ``openclaw ...`` (also ``node .../openclaw.mjs ...`` and ``node dist/index.js ...``, the
image's entry point) goes to :mod:`.openclaw_cli`; ``sh -c "<one simple command>"`` is split and run
the same way; ``true``, ``false``, ``echo`` and ``cat`` of a file delivered by ``config.files`` work;
anything else answers like a shell that cannot find the program: exit 127.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import shlex
from typing import Any

from controlplane.fly.emulator.agent import AgentView
from controlplane.fly.emulator.context import World
from controlplane.fly.emulator.errors import bad_request, precondition
from controlplane.fly.emulator.leases import require_nonce
from controlplane.fly.emulator.machines import find_machine, require_host
from controlplane.fly.emulator.openclaw_cli import ExecOutput, run_openclaw

SHELLS = frozenset({"sh", "bash", "ash", "dash"})
_SHELL_SYNTAX = set("|;&<>`$(){}*?~")
_OPENCLAW_ENTRY_POINTS = ("openclaw.mjs", "dist/index.js")


def parse_exec_request(body: dict[str, Any]) -> tuple[list[str], int | None, str | None]:
    """(argv, timeout, stdin) from Fly's request body; 400 on a malformed one."""
    command = body.get("command")
    if command is None and isinstance(body.get("cmd"), str):
        try:
            command = shlex.split(body["cmd"])
        except ValueError as exc:
            raise bad_request(f"invalid cmd: {exc}") from None
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        raise bad_request("command must be a non-empty array of strings")
    if command[0] == "":
        raise bad_request("command must name a program")
    timeout = body.get("timeout")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0):
        raise bad_request("timeout must be a non-negative integer (seconds)")
    stdin = body.get("stdin")
    if stdin is not None and not isinstance(stdin, str):
        raise bad_request("stdin must be a string")
    container = body.get("container")
    if container is not None and not isinstance(container, str):
        raise bad_request("container must be a string")
    return list(command), timeout, stdin


def exec_machine(
    world: World, app_name: str, machine_id: str, body: dict[str, Any], nonce: str | None
) -> dict[str, Any]:
    argv, _timeout, stdin = parse_exec_request(body)
    machine = find_machine(world, app_name, machine_id, allow_destroyed=False)
    if world.options.exec_respects_leases:
        require_nonce(world, machine, nonce)
    require_host(machine)
    if machine.state != "started":
        raise precondition(f"unable to exec on machine from current state: '{machine.state}'")
    output = run_command(AgentView.of(world, machine), argv, stdin)
    return {"exit_code": output.exit_code, "exit_signal": 0, "stdout": output.stdout, "stderr": output.stderr}


def run_command(view: AgentView, argv: list[str], stdin: str | None = None) -> ExecOutput:
    program = posixpath.basename(argv[0])
    if program in SHELLS and len(argv) >= 3 and argv[1] == "-c":
        return _shell(view, argv[2])
    if program == "openclaw":
        return run_openclaw(view, argv[1:])
    if program in ("node", "nodejs") and len(argv) > 1 and argv[1].endswith(_OPENCLAW_ENTRY_POINTS):
        return run_openclaw(view, argv[2:])
    if program == "true":
        return ExecOutput(0)
    if program == "false":
        return ExecOutput(1)
    if program == "echo":
        return ExecOutput(0, " ".join(argv[1:]) + "\n")
    if program == "cat":
        return _cat(view, argv[1:], stdin)
    return ExecOutput(127, "", f'exec: "{argv[0]}": executable file not found in $PATH\n')


def _shell(view: AgentView, script: str) -> ExecOutput:
    if _SHELL_SYNTAX & set(script):
        return ExecOutput(2, "", "fly-emulator: the emulated shell runs one simple command (no pipes, ...)\n")
    try:
        argv = shlex.split(script)
    except ValueError as exc:
        return ExecOutput(2, "", f"sh: 1: Syntax error: {exc}\n")
    if not argv:
        return ExecOutput(0)
    output = run_command(view, argv)
    if output.exit_code == 127 and output.stderr.startswith("exec:"):
        return ExecOutput(127, "", f"sh: 1: {argv[0]}: not found\n")
    return output


def _cat(view: AgentView, paths: list[str], stdin: str | None) -> ExecOutput:
    if not paths:
        return ExecOutput(0, stdin or "")
    files = {
        item.get("guest_path"): item.get("raw_value")
        for item in view.machine.config.get("files") or []
        if isinstance(item, dict)
    }
    out, err, code = [], [], 0
    for path in paths:
        raw = files.get(path)
        if not isinstance(raw, str):
            err.append(f"cat: {path}: No such file or directory\n")
            code = 1
            continue
        try:
            out.append(base64.b64decode(raw, validate=True).decode("utf-8", errors="replace"))
        except binascii.Error:
            err.append(f"cat: {path}: Input/output error\n")
            code = 1
    return ExecOutput(code, "".join(out), "".join(err))
