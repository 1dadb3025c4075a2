"""aipgd start-up errors as an operator sees them: one clear "Error: ..." line, exit code 1, no traceback."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from framework import TestNode


def _assert_clean_failure(node: TestNode, extra_args: list[str], expected: str) -> str:
    err = node.assert_start_raises_init_error(extra_args, expected)
    assert "Traceback" not in err, err
    return err


def test_unknown_option_is_an_error(node: TestNode) -> None:
    err = _assert_clean_failure(node, ["-foo=1"], "Error: Invalid parameter -foo")
    assert err.strip() == "Error: Invalid parameter -foo"
    assert not node.netdir.exists()


def test_help_and_version_exit_zero(node: TestNode) -> None:
    assert node.run_to_exit(["-help"]) == 0
    out = node.stdout()
    for usage in ("-conf=<file>", "-datadir=<dir>", "-daemon", "-pid=<file>", "-regtest", "-testnet",
                  "-printtoconsole", "-debug=<category>", "-version"):
        assert f"\n  {usage}\n" in out
    assert node.run_to_exit(["-?", "-help-debug"]) == 0
    assert "-kawpowactivationtime=<n>" in node.stdout()
    assert node.run_to_exit(["-version"]) == 0
    assert node.stdout().startswith("aipgd (aipg-node) version v")
    assert not node.netdir.exists()


def test_regtest_with_testnet_is_an_error(node: TestNode) -> None:
    _assert_clean_failure(node, ["-testnet"], "Error: Invalid combination of -regtest and -testnet.")


def test_nonexistent_datadir_is_an_error(node: TestNode) -> None:
    missing = node.datadir / "nope"
    _assert_clean_failure(node, [f"-datadir={missing}"],
                          f'Error: Specified data directory "{missing}" does not exist.')


def test_bad_conf_line_names_file_and_line(node: TestNode) -> None:
    conf = node.datadir / "aipg.conf"
    conf.write_text("# comment\nprinttoconsole=1\nbogus line\n")
    _assert_clean_failure(node, [], f"{conf}:3: parse error on 'bogus line'")


def test_missing_explicit_conf_is_an_error(node: TestNode) -> None:
    _assert_clean_failure(node, ["-conf=missing.conf"],
                          'Specified config file "missing.conf" does not exist.')


def test_unwritable_network_directory_is_a_clear_error(node: TestNode) -> None:
    # A file where the regtest directory should be: fails even for root, unlike chmod.
    node.netdir.write_text("not a directory")
    _assert_clean_failure(node, [], "Error: Cannot create data directory")


def test_corrupt_chainstate_database_is_a_clear_error(node: TestNode) -> None:
    node.start()
    assert node.stop() == 0
    (node.chainstate_dir / "CURRENT").write_bytes(b"\x00garbage")
    err = _assert_clean_failure(node, [], "Error: Error opening chainstate database")
    assert "Restart with -reindex-chainstate" in err
    assert "Error: Error opening chainstate database" in node.log_since_start()
    assert "Shutdown: done" in node.log_since_start()
    # The failed start released the lock and removed its pid file.
    assert not (node.netdir / "aipgd.pid").exists()


def test_corrupt_block_file_is_a_clear_error(node: TestNode) -> None:
    node.start()
    assert node.stop() == 0
    blk = node.blocks_dir / "blk00000.dat"
    data = bytearray(blk.read_bytes())
    data[50] ^= 0xFF  # inside the genesis header's merkle root
    blk.write_bytes(bytes(data))
    err = _assert_clean_failure(node, [], "does not match the block index")
    assert "-reindex" in err


def test_datadir_of_another_network_is_rejected(make_node: Callable[..., TestNode]) -> None:
    testnet = make_node("multi", network="test")
    testnet.start()
    assert testnet.stop() == 0
    regtest = make_node("multi", network="regtest")
    regtest.netdir.mkdir()
    for name in ("blocks", "chainstate"):
        shutil.move(testnet.netdir / name, regtest.netdir / name)
    _assert_clean_failure(regtest, [], "Incorrect or no genesis block found")
