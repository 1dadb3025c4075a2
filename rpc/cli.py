"""aipg-cli: send one command to aipgd's JSON-RPC server (Core: aipg-cli.cpp, rpc/client.cpp).

Owns Core's single-dash options, reading aipg.conf and the auth cookie, converting command-line words
into JSON by each method's declared parameter kinds (Core's vRPCConvertParams), -named arguments,
-stdin, -rpcwait, and printing results and errors the way Core does (strings raw, JSON indented by 2,
`error code:` / `error message:` on stderr with exit status abs(code)). It must never talk to the node
except over RPC.
"""

from __future__ import annotations

import base64
import http.client
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from aipgd.config import interpret_bool
from aipgd.datadir import NETWORKS, default_datadir, network_dir
from aipgd.options import CONF_FILENAME, version_string
from rpc.auth import COOKIE_FILENAME, read_cookie
from rpc.cli_params import PARAMS
from rpc.errors import RPCErrorCode
from rpc.jsonutil import dumps, loads
from rpc.registry import Kind

DEFAULT_RPCCONNECT = "127.0.0.1"
DEFAULT_HTTP_CLIENT_TIMEOUT = 900
RPC_PORTS = {"main": 9788, "test": 19788, "regtest": 19555}
_CLI_OPTIONS = {
    "?", "h", "help", "version", "conf", "datadir", "testnet", "regtest", "named", "rpcconnect", "rpcport",
    "rpcwait", "rpcuser", "rpcpassword", "rpcclienttimeout", "stdin", "stdinrpcpass", "rpccookiefile",
}
_BOOL_OPTIONS = {"?", "h", "help", "version", "testnet", "regtest", "named", "rpcwait", "stdin",
                 "stdinrpcpass"}

USAGE = f"""aipg-cli (aipg-node) RPC client version {version_string()}

Usage:
  aipg-cli [options] <command> [params]  Send command to aipgd
  aipg-cli [options] -named <command> [name=value] ... Send command to aipgd (with named arguments)
  aipg-cli [options] help                List commands
  aipg-cli [options] help <command>      Get help for a command

Options:

  -?
       This help message

  -conf=<file>
       Specify configuration file (default: {CONF_FILENAME})

  -datadir=<dir>
       Specify data directory

Chain selection options:

  -testnet
       Use the test chain

  -regtest
       Enter regression test mode, which uses a special chain in which blocks
       can be solved instantly. This is intended for regression testing tools
       and app development.

  -named
       Pass named instead of positional arguments (default: 0)

  -rpcconnect=<ip>
       Send commands to node running on <ip> (default: {DEFAULT_RPCCONNECT})

  -rpcport=<port>
       Connect to JSON-RPC on <port> (default: 9788 or testnet: 19788)

  -rpcwait
       Wait for RPC server to start

  -rpcuser=<user>
       Username for JSON-RPC connections

  -rpcpassword=<pw>
       Password for JSON-RPC connections

  -rpcclienttimeout=<n>
       Timeout in seconds during HTTP requests, or 0 for no timeout. (default:
       {DEFAULT_HTTP_CLIENT_TIMEOUT})

  -stdinrpcpass
       Read RPC password from standard input as a single line. When combined
       with -stdin, the first line from standard input is used for the RPC
       password.

  -stdin
       Read extra arguments from standard input, one per line until EOF/Ctrl-D
       (recommended for sensitive information such as passphrases). When
       combined with -stdinrpcpass, the first line from standard input is used
       for the RPC password.
"""


class CLIError(Exception):
    """A failure printed as `error: <message>` with exit status 1."""


class ConnectionFailedError(Exception):
    """Core: CConnectionFailed, retried under -rpcwait."""


class Settings:
    """Command line over the config file's network section over its top (Core's precedence)."""

    def __init__(self) -> None:
        self.cmdline: dict[str, str] = {}
        self.conf: dict[str, dict[str, str]] = {}
        self.network = "main"

    def get(self, name: str, default: str | None = None) -> str | None:
        if name in self.cmdline:
            return self.cmdline[name]
        for section in (self.network, ""):
            if name in self.conf.get(section, {}):
                return self.conf[section][name]
        return default

    def get_bool(self, name: str) -> bool:
        value = self.get(name)
        return value is not None and interpret_bool(name, value)


def parse_cli_args(argv: Sequence[str]) -> tuple[Settings, list[str]]:
    """Core: ParseParameters stops at the first word without a dash: that is the command."""
    settings = Settings()
    args = list(argv)
    while args and args[0].startswith("-") and len(args[0]) > 1:
        token = args.pop(0)
        key, sep, value = token.lstrip("-").partition("=")
        negated = key.startswith("no") and key[2:] in _BOOL_OPTIONS
        name = key[2:] if negated else key
        if name not in _CLI_OPTIONS:
            raise CLIError(f"Invalid parameter -{key}")
        if name in _BOOL_OPTIONS:
            truth = interpret_bool(name, value) if sep else True
            settings.cmdline[name] = "0" if truth == negated else "1"
        else:
            settings.cmdline[name] = value
    return settings, args


def read_conf(settings: Settings, path: Path) -> None:
    """aipg.conf as aipgd reads it; options only aipgd knows are kept and ignored (Core 0.15's client)."""
    section = ""
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        name, sep, value = line.partition("=")
        if not sep:
            continue
        name, value = name.strip(), value.strip()
        prefix, dot, rest = name.partition(".")
        target = section
        if dot and prefix in NETWORKS:
            target, name = prefix, rest
        settings.conf.setdefault(target, {}).setdefault(name, value)


def _top_bool(settings: Settings, name: str) -> bool:
    value = settings.cmdline.get(name, settings.conf.get("", {}).get(name))
    return value is not None and interpret_bool(name, value)


def load_settings(argv: Sequence[str]) -> tuple[Settings, list[str], Path]:
    settings, args = parse_cli_args(argv)
    datadir_arg = settings.cmdline.get("datadir")
    if datadir_arg:
        datadir = Path(os.path.abspath(datadir_arg))
        if not datadir.is_dir():
            raise CLIError(f'Specified data directory "{datadir_arg}" does not exist.')
    else:
        datadir = default_datadir()
    conf = Path(settings.cmdline.get("conf") or CONF_FILENAME)
    conf = conf if conf.is_absolute() else datadir / conf
    if conf.exists():
        try:
            read_conf(settings, conf)
        except OSError as exc:
            raise CLIError(f"Error reading configuration file: {exc}") from exc
    regtest, testnet = _top_bool(settings, "regtest"), _top_bool(settings, "testnet")
    if regtest and testnet:
        raise CLIError("Invalid combination of -regtest and -testnet.")
    settings.network = "regtest" if regtest else "test" if testnet else "main"
    conf_datadir = settings.get("datadir")
    if conf_datadir and not datadir_arg:
        datadir = Path(os.path.abspath(conf_datadir))
    return settings, args, network_dir(datadir, settings.network)


def _parse_json_word(word: str) -> Any:
    """Core: ParseNonRFCJSONValue, any JSON value (not only objects and arrays)."""
    try:
        return loads(word)
    except (ValueError, RecursionError):
        raise CLIError(f"Error parsing JSON:{word}") from None


def convert_params(method: str, words: list[str], named: bool) -> Any:
    """Core: RPCConvertValues / RPCConvertNamedValues, driven by the server's own declarations."""
    kinds: dict[str, Kind] = {}
    order: list[Kind] = []
    for param_name, param_kind in PARAMS.get(method, ()):
        order.append(param_kind)
        for name in param_name.split("|"):
            kinds[name] = param_kind
    if not named:
        out: list[Any] = []
        for i, word in enumerate(words):
            kind = order[i] if i < len(order) else Kind.STR
            out.append(_parse_json_word(word) if kind.cli_converts else word)
        return out
    params: dict[str, Any] = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep:
            raise CLIError(f"No '=' in named argument '{word}', this needs to be present for every argument "
                           "(even if it is empty)")
        kind = kinds.get(name, Kind.STR)
        params[name] = _parse_json_word(value) if kind.cli_converts else value
    return params


def _credentials(settings: Settings, netdir: Path, conf_label: str) -> str:
    password = settings.get("rpcpassword", "") or ""
    if password:
        return f"{settings.get('rpcuser', '') or ''}:{password}"
    cookie = Path(settings.get("rpccookiefile") or COOKIE_FILENAME)
    cookie = cookie if cookie.is_absolute() else netdir / cookie
    value = read_cookie(cookie)
    if value is None:
        raise CLIError("Could not locate RPC credentials. No authentication cookie could be found, and RPC "
                       "password is not set.  See -rpcpassword and -stdinrpcpass.  Configuration file: "
                       f"({conf_label})")
    return value


def _host_port(settings: Settings) -> tuple[str, int]:
    host = settings.get("rpcconnect", DEFAULT_RPCCONNECT) or DEFAULT_RPCCONNECT
    port = RPC_PORTS[settings.network]
    if host.startswith("[") and "]" in host:
        inner, _, rest = host[1:].partition("]")
        host = inner
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif host.count(":") == 1:
        name, _, number = host.partition(":")
        if number.isdigit():
            host, port = name, int(number)
    port_arg = settings.get("rpcport")
    if port_arg:
        if not port_arg.isdigit():
            raise CLIError(f"Invalid port provided in -rpcport: {port_arg}")
        port = int(port_arg)
    return host, port


def call_rpc(settings: Settings, netdir: Path, conf_label: str, method: str, params: Any) -> dict[str, Any]:
    host, port = _host_port(settings)
    timeout_s = int(settings.get("rpcclienttimeout", str(DEFAULT_HTTP_CLIENT_TIMEOUT)) or 0)
    body = dumps({"method": method, "params": params, "id": 1}).encode()
    try:
        conn = http.client.HTTPConnection(host, port, timeout=timeout_s if timeout_s > 0 else None)
        conn.connect()
    except (TimeoutError, OSError) as exc:
        raise ConnectionFailedError(f"Could not connect to the server {host}:{port}\n\nMake sure the "
                               f"aipgd server is "
                               "running and that you are connecting to the correct RPC port.") from exc
    userpass = _credentials(settings, netdir, conf_label)
    headers = {"Host": f"{host}:{port}", "Connection": "close", "Content-Type": "application/json",
               "Authorization": "Basic " + base64.b64encode(userpass.encode()).decode()}
    try:
        conn.request("POST", "/", body, headers)
        response = conn.getresponse()
        status = response.status
        payload = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise ConnectionFailedError(f"Could not connect to the server {host}:{port}\n\nMake sure the "
                               f"aipgd server is "
                               "running and that you are connecting to the correct RPC port.") from exc
    finally:
        conn.close()
    if status == 401:
        raise CLIError("incorrect rpcuser or rpcpassword (authorization failed)")
    if status >= 400 and status not in (400, 404, 500):
        raise CLIError(f"server returned HTTP error {status}")
    if not payload:
        raise CLIError("no response from server")
    try:
        reply = loads(payload)
    except ValueError:
        raise CLIError("couldn't parse reply from server") from None
    if not isinstance(reply, dict) or "result" not in reply or "error" not in reply or "id" not in reply:
        raise CLIError("expected reply to have result, error and id properties")
    return reply


def run(argv: Sequence[str], stdin: Any = None) -> tuple[int, str]:
    """Core: CommandLineRPC. Returns (exit status, text); the text goes to stdout only when status is 0."""
    stdin = sys.stdin if stdin is None else stdin
    try:
        settings, args, netdir = load_settings(argv)
    except CLIError as exc:
        return 1, f"Error: {exc}"
    if any(settings.get_bool(name) for name in ("?", "h", "help", "version")):
        return 0, USAGE.rstrip("\n") if not settings.get_bool("version") else USAGE.split("\n", 1)[0]
    conf_label = str(netdir.parent / CONF_FILENAME if settings.network != "main" else netdir / CONF_FILENAME)
    try:
        if settings.get_bool("stdinrpcpass"):
            line = stdin.readline()
            if not line:
                raise CLIError("-stdinrpcpass specified but failed to read from standard input")
            settings.cmdline["rpcpassword"] = line.rstrip("\r\n")
        if settings.get_bool("stdin"):
            args += [line.rstrip("\r\n") for line in stdin]
        if not args:
            raise CLIError("too few parameters (need at least command)")
        method, words = args[0], args[1:]
        params = convert_params(method, words, settings.get_bool("named"))
        wait = settings.get_bool("rpcwait")
        while True:
            try:
                reply = call_rpc(settings, netdir, conf_label, method, params)
                error = reply["error"]
                if error is not None and wait and isinstance(error, dict) \
                        and error.get("code") == RPCErrorCode.RPC_IN_WARMUP:
                    raise ConnectionFailedError("server in warmup")
                break
            except ConnectionFailedError:
                if not wait:
                    raise
                time.sleep(1)
    except ConnectionFailedError as exc:
        return 1, f"error: {exc}"
    except CLIError as exc:
        return 1, f"error: {exc}"
    error = reply["error"]
    if error is not None:
        if isinstance(error, dict):
            code = error.get("code")
            text = "" if code is None else f"error code: {code}\n"
            message = error.get("message")
            if isinstance(message, str):
                text += "error message:\n" + message
            status = abs(int(code)) if isinstance(code, int) else 1
            return status, text
        return 1, "error: " + dumps(error)
    result = reply["result"]
    if result is None:
        return 0, ""
    if isinstance(result, str):
        return 0, result
    return 0, dumps(result, indent=2)


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                 "help_option_names": []}, add_help_option=False)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def _command(argv: tuple[str, ...]) -> None:
    status, text = run(argv)
    if text:
        click.echo(text, err=status != 0)
    sys.exit(status)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        _command.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="aipg-cli",
                      standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
