"""The table of every command-line / aipg.conf option aipgd accepts, and its -help text.

Owns option names, value kinds, defaults and the Core-style help layout (Core: HelpMessage,
HelpMessageGroup, HelpMessageOpt). It must never read files, the environment or argv: parsing lives
in aipgd.config, which consults this table to reject unknown names.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from enum import Enum
from importlib import metadata

from aipgd.log import LOG_CATEGORIES

CONF_FILENAME = "aipg.conf"
PID_FILENAME = "aipgd.pid"
DEFAULT_DATADIR_DISPLAY = "~/.aipg"
PACKAGE_NAME = "aipgd"

# Core: util.cpp screenWidth / optIndent / msgIndent.
_SCREEN_WIDTH = 79
_OPT_INDENT = 2
_MSG_INDENT = 7


class Kind(Enum):
    """How an option's value is interpreted."""

    BOOL = "bool"  # -name, -name=1, -name=0, -noname
    STRING = "string"  # one value; the highest-precedence occurrence wins
    INT = "int"  # one integer value
    MULTI = "multi"  # every occurrence kept in order (e.g. -debug)


@dataclass(frozen=True, slots=True)
class Option:
    name: str  # without the leading dash
    kind: Kind
    help: str
    group: str
    arg: str | None = None  # placeholder shown in -help, e.g. "<file>"
    default: str | None = None  # shown as "(default: x)"; None means no default is printed
    debug_only: bool = False  # only listed by -help -help-debug (Core: showDebug)
    regtest_only: bool = False

    @property
    def usage(self) -> str:
        return f"-{self.name}={self.arg}" if self.arg else f"-{self.name}"


GROUP_OPTIONS = "Options:"
GROUP_CHAIN = "Chain selection options:"
GROUP_DEBUG = "Debugging/Testing options:"
GROUP_ORDER = (GROUP_OPTIONS, GROUP_CHAIN, GROUP_DEBUG)


def _debug_help() -> str:
    return (
        "Output debugging information (supplying <category> is optional). If <category> is not "
        "supplied or if <category> = 1 or all, output all debugging information; 0 or none turns "
        "it off. <category> can be: " + ", ".join(LOG_CATEGORIES) + "."
    )


OPTIONS: tuple[Option, ...] = (
    Option("?", Kind.BOOL, "Print this help message and exit", GROUP_OPTIONS),
    Option("version", Kind.BOOL, "Print version and exit", GROUP_OPTIONS),
    Option(
        "conf", Kind.STRING,
        "Specify configuration file. Relative paths will be prefixed by datadir location.",
        GROUP_OPTIONS, arg="<file>", default=CONF_FILENAME,
    ),
    Option(
        "daemon", Kind.BOOL,
        "Run in the background as a daemon; the starting process exits once the node is up",
        GROUP_OPTIONS, default="0",
    ),
    Option("datadir", Kind.STRING, "Specify data directory", GROUP_OPTIONS, arg="<dir>",
           default=DEFAULT_DATADIR_DISPLAY),
    Option(
        "pid", Kind.STRING,
        "Specify pid file. Relative paths will be prefixed by a net-specific datadir location.",
        GROUP_OPTIONS, arg="<file>", default=PID_FILENAME,
    ),
    Option("testnet", Kind.BOOL, "Use the test chain", GROUP_CHAIN, default="0"),
    Option(
        "regtest", Kind.BOOL,
        "Enter regression test mode, which uses a special chain in which blocks can be solved "
        "instantly. This is intended for regression testing tools and app development.",
        GROUP_CHAIN, default="0",
    ),
    Option(
        "kawpowactivationtime", Kind.INT,
        "Block time (nTime) from which headers are KawPoW headers (regtest only). aipgd's regtest "
        "mines KawPoW from height 1; AIPG Core's value is 3582830167.",
        GROUP_CHAIN, arg="<n>", default="KawPoW from height 1", debug_only=True, regtest_only=True,
    ),
    Option("debug", Kind.MULTI, _debug_help(), GROUP_DEBUG, arg="<category>", default="0"),
    Option(
        "debugexclude", Kind.MULTI,
        "Exclude debugging information for a category. Can be used in conjunction with -debug=1 to "
        "output debug logs for all categories except one or more specified categories.",
        GROUP_DEBUG, arg="<category>", default="none",
    ),
    Option("help-debug", Kind.BOOL, "Show all debugging options (usage: --help -help-debug)", GROUP_DEBUG),
    Option(
        "printtoconsole", Kind.BOOL, "Send trace/debug info to the console as well as to debug.log",
        GROUP_DEBUG, default="0",
    ),
)

# -h and -help are accepted spellings of -? (Core: AppInit checks all three).
HELP_ALIASES = ("h", "help")

_BY_NAME: dict[str, Option] = {opt.name: opt for opt in OPTIONS}
for _alias in HELP_ALIASES:
    _BY_NAME[_alias] = _BY_NAME["?"]


def find_option(name: str) -> Option | None:
    """The option called `name` (no dash), or None if aipgd does not know it."""
    return _BY_NAME.get(name)


def version_string() -> str:
    try:
        return "v" + metadata.version("aipg-node")
    except metadata.PackageNotFoundError:
        return "v0.0.0-unknown"


def _help_opt(option: Option) -> str:
    message = option.help
    if option.default is not None:
        message += f" (default: {option.default})"
    wrapped = textwrap.fill(
        message, width=_SCREEN_WIDTH, initial_indent=" " * _MSG_INDENT,
        subsequent_indent=" " * _MSG_INDENT, break_long_words=False, break_on_hyphens=False,
    )
    return " " * _OPT_INDENT + option.usage + "\n" + wrapped + "\n\n"


def help_message(show_debug: bool = False) -> str:
    """The option list in Core's layout: a group header, then each option and its indented text."""
    out: list[str] = []
    for group in GROUP_ORDER:
        members = [o for o in OPTIONS if o.group == group and (show_debug or not o.debug_only)]
        if not members:
            continue
        out.append(group + "\n\n")
        out.extend(_help_opt(o) for o in members)
    return "".join(out)


def usage_text(show_debug: bool = False) -> str:
    """Full -help output (Core: AppInit's strUsage)."""
    return (
        f"{PACKAGE_NAME} (aipg-node) version {version_string()}\n\n"
        "Usage:\n"
        f"  {PACKAGE_NAME} [options]                     Start the AIPG node daemon\n\n"
        + help_message(show_debug)
    )


def version_text() -> str:
    return (
        f"{PACKAGE_NAME} (aipg-node) version {version_string()}\n"
        "A Python full node for the AI Power Grid (AIPG) network.\n"
        "Distributed under the MIT software license.\n"
    )
