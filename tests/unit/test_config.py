"""Command-line and aipg.conf parsing: syntax, precedence, sections, errors and -help."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aipgd.config import ArgsManager, ConfigError, load_config
from aipgd.datadir import NETWORK_SUBDIRS, default_datadir, network_dir
from aipgd.log import LOG_CATEGORIES
from aipgd.options import OPTIONS, help_message, usage_text


def _args(argv: list[str], conf: str | None = None, network: str | None = None) -> ArgsManager:
    args = ArgsManager()
    args.parse_command_line(argv)
    if conf is not None:
        args.read_config_text(conf, "aipg.conf")
    if network is None:
        args.select_network()
    else:
        args.network = network
    return args


# -- command-line syntax ---------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "expected"), [
    (["-printtoconsole"], True),
    (["-printtoconsole=1"], True),
    (["-printtoconsole=0"], False),
    (["-noprinttoconsole"], False),
    (["-noprinttoconsole=0"], True),  # Core: InterpretNegativeSetting, -nofoo=0 is -foo=1
    (["--printtoconsole"], True),
    (["--printtoconsole=0"], False),
    (["--noprinttoconsole"], False),
    (["-printtoconsole", "-noprinttoconsole"], False),  # the last one on the command line wins
    (["-noprinttoconsole", "-printtoconsole"], True),
    ([], False),
])
def test_boolean_spellings(argv: list[str], expected: bool) -> None:
    assert _args(argv).get_bool("printtoconsole", False) is expected


def test_string_value_and_last_wins() -> None:
    args = _args(["-pid=a.pid", "--pid=b.pid"])
    assert args.get("pid") == "b.pid"


def test_value_may_contain_equals_sign() -> None:
    assert _args(["-datadir=/tmp/a=b"]).get("datadir") == "/tmp/a=b"


def test_repeated_multi_option_keeps_every_value_in_order() -> None:
    args = _args(["-debug=net", "-debug=rpc", "--debug=db"])
    assert args.get_all("debug") == ["net", "rpc", "db"]


def test_negated_multi_option_clears_earlier_values() -> None:
    args = _args(["-debugexclude=net", "-nodebugexclude", "-debugexclude=rpc"])
    assert args.get_all("debugexclude") == ["rpc"]


@pytest.mark.parametrize("token", ["-foo", "-foo=1", "--bar", "-nofoo", "-regtests"])
def test_unknown_option_is_an_error_naming_it(token: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        _args([token])
    name = token.split("=")[0].lstrip("-")
    assert str(excinfo.value) == f"Invalid parameter -{name}"


def test_loose_token_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unexpected token 'regtest'"):
        _args(["regtest"])


@pytest.mark.parametrize("value", ["yes", "true", "on", "1x"])
def test_non_numeric_boolean_is_an_error(value: str) -> None:
    with pytest.raises(ConfigError, match=f"Invalid boolean value -daemon={value}"):
        _args([f"-daemon={value}"])


def test_non_integer_int_option_is_an_error() -> None:
    with pytest.raises(ConfigError, match="Invalid integer value -kawpowactivationtime=soon"):
        _args(["-regtest", "-kawpowactivationtime=soon"])


def test_negated_string_option_is_disabled() -> None:
    args = _args(["-nopid"])
    assert args.is_set("pid")
    assert args.get("pid", "default") is None


def test_negating_string_option_with_value_is_an_error() -> None:
    with pytest.raises(ConfigError, match="meaningless"):
        _args(["-nopid=foo"])


@pytest.mark.parametrize("spelling", ["-?", "-h", "-help", "--help"])
def test_help_spellings(spelling: str) -> None:
    assert _args([spelling]).get_bool("?", False)


# -- network selection -----------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "conf", "network"), [
    ([], "", "main"),
    (["-testnet"], "", "test"),
    (["-regtest"], "", "regtest"),
    (["-regtest=0"], "", "main"),
    ([], "regtest=1\n", "regtest"),
    ([], "testnet=1\n", "test"),
    (["-noregtest"], "regtest=1\n", "main"),  # the command line overrides the file
    ([], "[regtest]\nregtest=1\n", "main"),  # a section cannot select its own network
])
def test_network_selection(argv: list[str], conf: str, network: str) -> None:
    args = ArgsManager()
    args.parse_command_line(argv)
    args.read_config_text(conf, "aipg.conf")
    assert args.select_network() == network


@pytest.mark.parametrize(("argv", "conf"), [
    (["-regtest", "-testnet"], ""),
    (["-regtest"], "testnet=1\n"),
    ([], "regtest=1\ntestnet=1\n"),
])
def test_regtest_with_testnet_is_an_error(argv: list[str], conf: str) -> None:
    args = ArgsManager()
    args.parse_command_line(argv)
    args.read_config_text(conf, "aipg.conf")
    with pytest.raises(ConfigError) as excinfo:
        args.select_network()
    assert str(excinfo.value) == "Invalid combination of -regtest and -testnet."


# -- aipg.conf -------------------------------------------------------------------------------------

CONF = """\
# a comment line
   # an indented comment

printtoconsole = 1   # trailing comment
debug=net
debug = rpc
pid=top.pid
pid=second.pid

[regtest]
debug=db
pid=regtest.pid
[test]
pid=test.pid
main.pid=main.pid
"""


def test_conf_comments_whitespace_and_repeats() -> None:
    args = _args([], CONF, network="main")
    assert args.get_bool("printtoconsole", False)
    assert args.get_all("debug") == ["net", "rpc"]
    # In the file the first value wins (Core: ReadConfigFile never overwrites a set option).
    assert args.get("pid") == "main.pid"


def test_conf_network_section_takes_precedence_over_top_level() -> None:
    args = _args([], CONF, network="regtest")
    assert args.get("pid") == "regtest.pid"
    assert args.get_all("debug") == ["net", "rpc", "db"]
    assert _args([], CONF, network="test").get("pid") == "test.pid"


def test_conf_top_level_applies_when_network_has_no_value() -> None:
    args = _args([], "pid=top.pid\n[regtest]\ndebug=db\n", network="regtest")
    assert args.get("pid") == "top.pid"


def test_command_line_overrides_conf() -> None:
    args = _args(["-pid=cmd.pid", "-noprinttoconsole", "-debug=http"], CONF, network="regtest")
    assert args.get("pid") == "cmd.pid"
    assert not args.get_bool("printtoconsole", True)
    # Multi-valued options accumulate: file values first, then the command line.
    assert args.get_all("debug") == ["net", "rpc", "db", "http"]


def test_conf_negation() -> None:
    args = _args([], "noprinttoconsole=1\n", network="main")
    assert args.get_bool("printtoconsole", True) is False
    args = _args([], "printtoconsole=0\n", network="main")
    assert args.get_bool("printtoconsole", True) is False


def test_conf_empty_value_is_true_for_booleans() -> None:
    assert _args([], "printtoconsole=\n", network="main").get_bool("printtoconsole", False)


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("printtoconsole=1\nregtest\n", 2, "parse error on 'regtest'"),
    ("\n\nnoprinttoconsole\n", 3, "use noprinttoconsole=1 instead"),
    ("foo=1\n", 1, "invalid parameter foo"),
    ("# ok\n[mainnet]\n", 2, "unknown section [mainnet]"),
    ("[regtest\n", 1, "parse error on '[regtest'"),
    ("-debug=net\n", 1, "without a dash"),
    ("=1\n", 1, "parse error on '=1'"),
    ("conf=other.conf\n", 1, "conf cannot be set in the configuration file"),
    ("daemon=yes\n", 1, "Invalid boolean value -daemon=yes"),
    ("bogus.debug=net\n", 1, "invalid parameter bogus.debug"),
    ("includeconf=x.conf\n", 1, "invalid parameter includeconf"),
])
def test_bad_conf_line_reports_file_and_line(text: str, line: int, fragment: str) -> None:
    args = ArgsManager()
    with pytest.raises(ConfigError) as excinfo:
        args.read_config_text(text, "/x/aipg.conf")
    message = str(excinfo.value)
    assert f"/x/aipg.conf:{line}" in message
    assert fragment in message


# -- load_config: files and directories ------------------------------------------------------------


def test_missing_default_conf_is_fine(tmp_path: Path) -> None:
    config = load_config([f"-datadir={tmp_path}", "-regtest"])
    assert config.conf_file is None
    assert config.network == "regtest"
    assert config.netdir == tmp_path / "regtest"


def test_missing_explicit_conf_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape('Specified config file "nope.conf" does not exist.')):
        load_config([f"-datadir={tmp_path}", "-conf=nope.conf"])


def test_nonexistent_datadir_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError) as excinfo:
        load_config([f"-datadir={missing}"])
    assert str(excinfo.value) == f'Specified data directory "{missing}" does not exist.'


def test_default_conf_in_datadir_is_read(tmp_path: Path) -> None:
    (tmp_path / "aipg.conf").write_text("testnet=1\ndebug=net\n[test]\nprinttoconsole=1\n")
    config = load_config([f"-datadir={tmp_path}"])
    assert config.network == "test"
    assert config.netdir == tmp_path / "testnet_aipg"
    assert config.conf_file == tmp_path / "aipg.conf"
    assert config.print_to_console
    assert config.debug_categories == frozenset({"net"})


def test_relative_conf_is_relative_to_datadir_and_absolute_is_kept(tmp_path: Path) -> None:
    (tmp_path / "other.conf").write_text("regtest=1\n")
    assert load_config([f"-datadir={tmp_path}", "-conf=other.conf"]).network == "regtest"
    elsewhere = tmp_path / "sub"
    elsewhere.mkdir()
    assert load_config([f"-datadir={elsewhere}", f"-conf={tmp_path / 'other.conf'}"]).network == "regtest"


def test_noconf_skips_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "aipg.conf").write_text("regtest=1\n")
    assert load_config([f"-datadir={tmp_path}", "-noconf"]).network == "main"


def test_conf_can_move_the_datadir(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    conf = tmp_path / "x.conf"
    conf.write_text(f"datadir={real}\nregtest=1\n")
    config = load_config([f"-conf={conf}"], home=str(tmp_path))
    assert config.datadir == real
    assert config.netdir == real / "regtest"


def test_bad_conf_file_error_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "aipg.conf").write_text("regtest=1\nwhat is this\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config([f"-datadir={tmp_path}"])
    assert f"{tmp_path / 'aipg.conf'}:2" in str(excinfo.value)


def test_pid_file_default_relative_absolute_and_disabled(tmp_path: Path) -> None:
    base = [f"-datadir={tmp_path}", "-regtest"]
    assert load_config(base).pid_file == tmp_path / "regtest" / "aipgd.pid"
    assert load_config([*base, "-pid=x.pid"]).pid_file == tmp_path / "regtest" / "x.pid"
    assert load_config([*base, f"-pid={tmp_path / 'abs.pid'}"]).pid_file == tmp_path / "abs.pid"
    assert load_config([*base, "-nopid"]).pid_file is None


def test_kawpow_activation_time_is_regtest_only(tmp_path: Path) -> None:
    config = load_config([f"-datadir={tmp_path}", "-regtest", "-kawpowactivationtime=3582830167"])
    assert config.kawpow_activation_time == 3582830167
    with pytest.raises(ConfigError, match="only allowed with -regtest"):
        load_config([f"-datadir={tmp_path}", "-testnet", "-kawpowactivationtime=5"])
    with pytest.raises(ConfigError, match="must be between"):
        load_config([f"-datadir={tmp_path}", "-regtest", "-kawpowactivationtime=-1"])


@pytest.mark.parametrize(("argv", "expected"), [
    ([], frozenset()),
    (["-debug"], frozenset(LOG_CATEGORIES)),
    (["-debug=1"], frozenset(LOG_CATEGORIES)),
    (["-debug=all"], frozenset(LOG_CATEGORIES)),
    (["-debug=net", "-debug=rpc"], frozenset({"net", "rpc"})),
    (["-debug", "-debugexclude=net"], frozenset(LOG_CATEGORIES) - {"net"}),
    (["-debug=net", "-debug=0"], frozenset()),
    (["-debug=net", "-nodebug"], frozenset()),
])
def test_debug_categories(tmp_path: Path, argv: list[str], expected: frozenset[str]) -> None:
    assert load_config([f"-datadir={tmp_path}", *argv]).debug_categories == expected


def test_unknown_debug_category_is_a_warning(tmp_path: Path) -> None:
    config = load_config([f"-datadir={tmp_path}", "-debug=net", "-debug=bogus"])
    assert config.debug_categories == frozenset({"net"})
    assert config.warnings == ("Unsupported logging category -debug=bogus.",)


def test_default_datadir_layout() -> None:
    assert default_datadir("/home/alice") == Path("/home/alice/.aipg")
    assert default_datadir("") == Path("/.aipg")
    root = Path("/d")
    assert network_dir(root, "main") == root
    assert network_dir(root, "test") == root / "testnet_aipg"
    assert network_dir(root, "regtest") == root / "regtest"


def test_network_subdirs_match_chain_params() -> None:
    from aipgd.core.params import get_params

    for network, subdir in NETWORK_SUBDIRS.items():
        assert get_params(network).data_subdir == subdir


# -- -help -----------------------------------------------------------------------------------------


def test_help_lists_every_option_with_its_default() -> None:
    text = help_message(show_debug=True)
    for option in OPTIONS:
        assert f"\n  {option.usage}\n" in "\n" + text, option.name
        if option.default is not None:
            # The default sits at the end of the option's (possibly wrapped) description.
            block = text.split(f"  {option.usage}\n", 1)[1].split("\n\n", 1)[0]
            assert f"(default: {option.default})" in " ".join(block.split()), option.name


def test_help_hides_debug_only_options_unless_asked() -> None:
    plain = help_message()
    assert "-kawpowactivationtime" not in plain
    for option in OPTIONS:
        if not option.debug_only:
            assert f"  {option.usage}\n" in plain


def test_help_layout_is_cores() -> None:
    text = usage_text()
    assert text.startswith("aipgd (aipg-node) version v")
    assert "\nUsage:\n  aipgd [options]" in text
    assert "\nOptions:\n\n  -?\n       Print this help message and exit\n\n" in text
    assert "  -conf=<file>\n       Specify configuration file." in text
    for line in text.splitlines():
        assert len(line) <= 79 or not re.search(r"\s", line.strip())
    for category in LOG_CATEGORIES:
        assert category in " ".join(text.split())


def test_sample_conf_parses_for_every_network() -> None:
    sample = Path(__file__).resolve().parents[2] / "contrib" / "aipg.conf"
    text = sample.read_text()
    for network in NETWORK_SUBDIRS:
        args = ArgsManager()
        args.read_config_text(text, str(sample))
        args.network = network
        assert not args.is_set("regtest")
    # Uncommenting every option line must still parse (it documents only real options).
    uncommented = "\n".join(
        line[1:] if line.startswith("#") and not line.startswith("##") and "=" in line and " " not in line
        else line for line in text.splitlines())
    args = ArgsManager()
    args.read_config_text(uncommented, str(sample))
    args.network = "regtest"
    assert args.get("kawpowactivationtime") == "3582830167"
