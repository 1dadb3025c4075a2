"""Command-line and aipg.conf parsing in Core's syntax, resolved into one immutable NodeConfig.

Owns `-name=value` / `--name` / `-noname` parsing, aipg.conf (comments, `[main]`/`[test]`/`[regtest]`
sections, `regtest.name=value`), precedence (command line > network section > top of the file) and
network selection (Core: ArgsManager, ReadConfigFile, ChainNameFromCommandLine). It must never
create files or directories, open databases, or start logging: the Node does that from NodeConfig.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aipgd.datadir import NETWORKS, default_datadir, network_dir
from aipgd.errors import InitError
from aipgd.log import resolve_categories
from aipgd.options import CONF_FILENAME, PID_FILENAME, Kind, Option, find_option

if TYPE_CHECKING:
    from aipgd.chain.chainstate import ChainStateOptions

_INT_RE = re.compile(r"[+-]?[0-9]+")
_UINT32_MAX = 0xFFFFFFFF


class ConfigError(InitError):
    """An invalid option, value or configuration file line."""


# One occurrence's value: a string, or None for a negated (-nofoo) non-boolean option.
ArgValue = str | None


def interpret_bool(name: str, value: str) -> bool:
    """Core: InterpretBool. An empty value means true; else an integer, non-zero is true.

    Core silently reads a non-number as 0 (so `daemon=yes` turned the daemon *off*); we refuse it.
    """
    if value == "":
        return True
    if not _INT_RE.fullmatch(value):
        raise ConfigError(f"Invalid boolean value -{name}={value} (use 1 or 0, or -no{name})")
    return int(value) != 0


def _normalize(option: Option, negated: bool, value: str) -> ArgValue:
    """Store a value in its canonical form (Core: InterpretNegativeSetting turns -noX into -X=0)."""
    name = option.name
    if option.kind is Kind.BOOL:
        truth = interpret_bool(name, value)
        return "0" if truth == negated else "1"
    if negated:
        if value not in ("", "1"):
            raise ConfigError(f"Negating of -{name} with a value is meaningless: -no{name}={value}")
        return None
    if option.kind is Kind.INT and not _INT_RE.fullmatch(value):
        raise ConfigError(f"Invalid integer value -{name}={value}")
    return value


def _lookup(name: str) -> tuple[Option, bool] | None:
    """The option a spelled name refers to, and whether it was negated with a `no` prefix."""
    option = find_option(name)
    if option is not None:
        return option, False
    if name.startswith("no") and len(name) > 2:
        option = find_option(name[2:])
        if option is not None:
            return option, True
    return None


@dataclass
class ArgsManager:
    """Every option occurrence from the command line and the config file, queried by precedence."""

    network: str | None = None
    _cmdline: dict[str, list[ArgValue]] = field(default_factory=dict)
    # Section "" is the top of the file; the others are network names.
    _conf: dict[str, dict[str, list[ArgValue]]] = field(default_factory=dict)

    # -- input -------------------------------------------------------------------------------

    def parse_command_line(self, argv: Sequence[str]) -> None:
        """Core: ParseParameters, plus Bitcoin Core 0.17's rejection of unknown options."""
        for token in argv:
            if not token.startswith("-") or token in ("-", "--"):
                raise ConfigError(
                    f"Command line contains unexpected token '{token}', see aipgd -h for a list of options."
                )
            key, sep, value = token.partition("=")
            # --foo is read as -foo (Core: "Interpret --foo as -foo").
            name = key[2:] if key.startswith("--") else key[1:]
            found = _lookup(name)
            if found is None:
                raise ConfigError(f"Invalid parameter {key if not key.startswith('--') else key[1:]}")
            option, negated = found
            normalized = _normalize(option, negated, value if sep else "")
            self._cmdline.setdefault(option.name, []).append(normalized)

    def read_config_file(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"Error reading configuration file {path}: not valid UTF-8 text") from exc
        except OSError as exc:
            raise ConfigError(f"Error reading configuration file {path}: {exc.strerror}") from exc
        self.read_config_text(text, str(path))

    def read_config_text(self, text: str, source: str) -> None:
        """aipg.conf syntax (Core 0.17 GetConfigOptions): `name=value`, `#` comments, `[net]` sections."""
        section = ""
        for lineno, raw in enumerate(text.splitlines(), start=1):
            where = f"{source}:{lineno}"
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("["):
                if not line.endswith("]"):
                    raise ConfigError(f"Error reading configuration file {where}: parse error on '{line}'")
                section = line[1:-1].strip()
                if section not in NETWORKS:
                    raise ConfigError(
                        f"Error reading configuration file {where}: unknown section [{section}] "
                        f"(expected one of {', '.join('[' + n + ']' for n in NETWORKS)})"
                    )
                continue
            name, sep, value = line.partition("=")
            name, value = name.strip(), value.strip()
            if not sep or not name:
                hint = ""
                if line.startswith("no") and sep == "":
                    hint = f"; if you intended to specify a negated option, use {line}=1 instead"
                raise ConfigError(f"Error reading configuration file {where}: parse error on '{line}'{hint}")
            if name.startswith("-"):
                raise ConfigError(
                    f"Error reading configuration file {where}: option names in the config file are "
                    f"written without a dash ('{name.lstrip('-')}={value}')"
                )
            target = section
            prefix, dot, rest = name.partition(".")
            if dot:
                if prefix not in NETWORKS:
                    raise ConfigError(f"Error reading configuration file {where}: invalid parameter {name}")
                target, name = prefix, rest
            if name == "conf":
                raise ConfigError(
                    f"Error reading configuration file {where}: conf cannot be set in the configuration file"
                )
            found = _lookup(name)
            if found is None:
                raise ConfigError(f"Error reading configuration file {where}: invalid parameter {name}")
            option, negated = found
            try:
                normalized = _normalize(option, negated, value)
            except ConfigError as exc:
                raise ConfigError(f"Error reading configuration file {where}: {exc}") from None
            self._conf.setdefault(target, {}).setdefault(option.name, []).append(normalized)

    # -- queries -----------------------------------------------------------------------------

    def _layers(self, name: str, with_sections: bool = True) -> list[list[ArgValue]]:
        """Occurrence lists from the highest precedence to the lowest."""
        layers: list[list[ArgValue]] = []
        if name in self._cmdline:
            layers.append(self._cmdline[name])
        if with_sections and self.network is not None:
            section = self._conf.get(self.network, {})
            if name in section:
                layers.append(section[name])
        top = self._conf.get("", {})
        if name in top:
            layers.append(top[name])
        return layers

    def is_set(self, name: str) -> bool:
        return bool(self._layers(name))

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value in force: the last on the command line, else the first in the config file
        (Core: "Don't overwrite existing settings so command line settings override aipg.conf").
        None when the option was negated."""
        layers = self._layers(name)
        if not layers:
            return default
        if layers[0] is self._cmdline.get(name):
            return layers[0][-1]
        return layers[0][0]

    def get_bool(self, name: str, default: bool) -> bool:
        value = self.get(name)
        if value is None:
            return default
        return value != "0"

    def get_int(self, name: str, default: int | None) -> int | None:
        value = self.get(name)
        if value is None:
            return default
        return int(value)

    def get_all(self, name: str) -> list[str]:
        """Every value of a multi-valued option, lowest precedence first; -noname clears the list."""
        result: list[str] = []
        for layer in reversed(self._layers(name)):
            for value in layer:
                if value is None:
                    result.clear()
                else:
                    result.append(value)
        return result

    def select_network(self) -> str:
        """Core: ChainNameFromCommandLine. Sections cannot select the network they belong to."""
        regtest = self._top_bool("regtest")
        testnet = self._top_bool("testnet")
        if regtest and testnet:
            raise ConfigError("Invalid combination of -regtest and -testnet.")
        self.network = "regtest" if regtest else "test" if testnet else "main"
        return self.network

    def _top_bool(self, name: str) -> bool:
        layers = self._layers(name, with_sections=False)
        if not layers:
            return False
        value = layers[0][-1] if layers[0] is self._cmdline.get(name) else layers[0][0]
        return value == "1"

    def cmdline_value(self, name: str) -> tuple[bool, str | None]:
        """(given, value) for an option on the command line only (used before the conf is read)."""
        if name not in self._cmdline:
            return False, None
        return True, self._cmdline[name][-1]


@dataclass(frozen=True)
class NodeConfig:
    """Everything start-up needs, resolved once. Later subsystems read their options from `args`."""

    network: str
    datadir: Path
    netdir: Path
    conf_file: Path | None
    print_to_console: bool
    debug_categories: frozenset[str]
    daemon: bool
    pid_file: Path | None
    kawpow_activation_time: int | None
    warnings: tuple[str, ...]
    args: ArgsManager = field(compare=False, repr=False)

    @property
    def log_file(self) -> Path:
        return self.netdir / "debug.log"


def _resolve_datadir(value: str | None) -> Path | None:
    if value is None or value == "":
        return None
    path = Path(os.path.abspath(value))
    if not path.is_dir():
        raise ConfigError(f'Specified data directory "{value}" does not exist.')
    return path


def load_config(argv: Sequence[str], home: str | None = None) -> NodeConfig:
    """Parse argv (without the program name) and aipg.conf into a NodeConfig.

    Order follows Core's AppInit: command line, then the data directory (-datadir must exist), then
    the config file found there, then network selection and the network's section.
    """
    args = ArgsManager()
    args.parse_command_line(argv)

    _, cmd_datadir = args.cmdline_value("datadir")
    datadir = _resolve_datadir(cmd_datadir) or default_datadir(home)

    conf_given, conf_value = args.cmdline_value("conf")
    conf_file: Path | None = None
    if not (conf_given and conf_value is None):  # -noconf: read no config file
        conf_path = Path(conf_value or CONF_FILENAME)
        if not conf_path.is_absolute():
            conf_path = datadir / conf_path
        if conf_path.exists():
            args.read_config_file(conf_path)
            conf_file = conf_path
        elif conf_given and conf_value:
            # Core ignores a missing file; an explicitly named one that is missing is almost surely a typo.
            raise ConfigError(f'Specified config file "{conf_value}" does not exist.')

    network = args.select_network()

    # The config file may move the data directory (Core: ReadConfigFile then ClearDatadirCache).
    conf_datadir = args.get("datadir")
    if conf_datadir and conf_datadir != cmd_datadir:
        datadir = _resolve_datadir(conf_datadir) or datadir
    netdir = network_dir(datadir, network)

    kawpow_time = args.get_int("kawpowactivationtime", None)
    if kawpow_time is not None:
        if network != "regtest":
            raise ConfigError("-kawpowactivationtime is only allowed with -regtest")
        if not 0 <= kawpow_time <= _UINT32_MAX:
            raise ConfigError(f"-kawpowactivationtime must be between 0 and {_UINT32_MAX}")

    check_storage_options(args)

    pid_value = args.get("pid", PID_FILENAME)
    pid_file: Path | None = None
    if pid_value is not None:  # -nopid: write no pid file
        pid_path = Path(pid_value or PID_FILENAME)
        pid_file = pid_path if pid_path.is_absolute() else netdir / pid_path

    categories, warnings = resolve_categories(args.get_all("debug"), args.get_all("debugexclude"))

    return NodeConfig(
        network=network,
        datadir=datadir,
        netdir=netdir,
        conf_file=conf_file,
        print_to_console=args.get_bool("printtoconsole", False),
        debug_categories=categories,
        daemon=args.get_bool("daemon", False),
        pid_file=pid_file,
        kawpow_activation_time=kawpow_time,
        warnings=tuple(warnings),
        args=args,
    )


def _assume_valid(value: str) -> bytes:
    """Core: uint256S(-assumevalid); "0" (a null hash) verifies every script."""
    text = value.strip().lower().removeprefix("0x")
    if not text or len(text) > 64 or any(c not in "0123456789abcdef" for c in text):
        raise ConfigError(f"Invalid -assumevalid={value}: expected a block hash in hex, or 0")
    return bytes.fromhex(text.rjust(64, "0"))[::-1]


def chainstate_options(args: ArgsManager) -> ChainStateOptions:
    """-dbcache, -assumevalid, -checkblocks, -checklevel, -maxreorg, -minreorgpeers, -minreorgage and -par."""
    from aipgd.chain.chainstate import (
        DEFAULT_CHECKBLOCKS,
        DEFAULT_CHECKLEVEL,
        DEFAULT_DB_CACHE_MIB,
        ChainStateOptions,
    )
    from aipgd.chain.connect import MAX_SCRIPT_CHECK_THREADS
    from aipgd.chain.header_rules import DEFAULT_MIN_REORG_AGE, DEFAULT_MIN_REORG_PEERS

    def non_negative(name: str, default: int | None) -> int | None:
        value = args.get_int(name, default)
        if value is not None and value < 0:
            raise ConfigError(f"-{name} must not be negative")
        return value

    assume_valid = args.get("assumevalid")
    par = args.get_int("par", 0) or 0
    if par < 0:
        # Core: a negative -par leaves that many cores free.
        par = max(1, (os.cpu_count() or 1) + par)
    return ChainStateOptions(
        dbcache_mib=args.get_int("dbcache", DEFAULT_DB_CACHE_MIB) or 0,
        assume_valid=None if assume_valid is None else _assume_valid(assume_valid),
        check_blocks=args.get_int("checkblocks", DEFAULT_CHECKBLOCKS) or 0,
        check_level=args.get_int("checklevel", DEFAULT_CHECKLEVEL) or 0,
        script_threads=min(par, MAX_SCRIPT_CHECK_THREADS),
        max_reorg_depth=non_negative("maxreorg", None),
        min_reorg_peers=non_negative("minreorgpeers", DEFAULT_MIN_REORG_PEERS) or 0,
        min_reorg_age=non_negative("minreorgage", DEFAULT_MIN_REORG_AGE) or 0,
        reindex=args.get_bool("reindex", False),
        reindex_chainstate=args.get_bool("reindex-chainstate", False),
        prune_target=check_storage_options(args),
    )


def check_storage_options(args: ArgsManager) -> int:
    """-prune and its conflicts, as Core's AppInitParameterInteraction says them; returns the prune
    target in bytes (0: off, PRUNE_MANUAL: -prune=1)."""
    from aipgd.chain.prune import prune_target_from_mib

    try:
        target = prune_target_from_mib(args.get_int("prune", 0) or 0)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if target:
        if args.get_bool("txindex", False):
            raise ConfigError("Prune mode is incompatible with -txindex.")
        if args.get_bool("reindex-chainstate", False):
            raise ConfigError("Prune mode is incompatible with -reindex-chainstate. "
                              "Use full -reindex instead.")
    return target
