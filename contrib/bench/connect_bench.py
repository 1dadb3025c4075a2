"""Block connection benchmark: -reindex-chainstate over a synthetic regtest chain of P2PKH payments.

Builds (once, then reuses) a datadir holding 100 coinbase-only blocks and then `--blocks` blocks of
`--txs` one-input, two-output P2PKH transactions signed with coincurve. Headers are legacy X16RV2
headers (regtest with AIPG Core's -kawpowactivationtime=3582830167), which cost microseconds to
solve, so building measures signing, not KawPoW. Each measurement runs in a fresh process on a fresh
copy of the datadir: ChainState rebuilds the UTXO set from the indexed blocks (-reindex-chainstate)
with full script checks, then with scripts skipped as under -assumevalid (the bench lowers the
two-week burial rule to zero, since a regtest chain this short is never buried two weeks deep).

Usage: python contrib/bench/connect_bench.py [--blocks 2000] [--txs 100] [--dbcache 450] [--par 0]
Prints blocks/s, tx/s and inputs/s, time split into reading blocks, scripts, UTXO access (ConnectBlock
less scripts), applying (undo data, then keeping the block's coins cache changes) and flushing
(LevelDB batches), and peak RSS.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from coincurve import PrivateKey

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from aipgd.chain import activation  # noqa: E402
from aipgd.chain.blockdb import BlockTreeDB  # noqa: E402
from aipgd.chain.blockimport import BlockImporter  # noqa: E402
from aipgd.chain.blockstore import BlockStore  # noqa: E402
from aipgd.chain.chaindb import ChainStateDB  # noqa: E402
from aipgd.chain.chainstate import ChainState, ChainStateOptions  # noqa: E402
from aipgd.consensus.pow import get_next_work_required  # noqa: E402
from aipgd.core.hashes import hash160  # noqa: E402
from aipgd.core.params import ChainParams, get_params  # noqa: E402
from aipgd.core.transaction import OutPoint, Transaction, TxIn, TxOut  # noqa: E402
from aipgd.core.uint256 import ZERO_HASH  # noqa: E402
from aipgd.mining.assembler import create_block, mine_block  # noqa: E402
from aipgd.script.batch import SpendInput, verify_inputs_batch  # noqa: E402
from aipgd.script.flags import (  # noqa: E402
    SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY,
    SCRIPT_VERIFY_CHECKSEQUENCEVERIFY,
    SCRIPT_VERIFY_DERSIG,
    SCRIPT_VERIFY_NULLDUMMY,
    SCRIPT_VERIFY_P2SH,
    SCRIPT_VERIFY_WITNESS,
    SIGHASH_ALL,
)
from aipgd.script.opcodes import Op  # noqa: E402
from aipgd.script.script import build_script, push_data  # noqa: E402
from aipgd.script.sighash import PrecomputedTxData, legacy_signature_hash  # noqa: E402

# AIPG Core's regtest KawPoW activation: every header stays a legacy X16RV2 header.
CORE_REGTEST_KAWPOW_TIME = 3582830167
MATURITY_BLOCKS = 100
FEE = 1000
KEYS = 16


class Link:
    """Height, time, bits and parent: what difficulty and median time past need of a header."""

    def __init__(self, block_hash: bytes, height: int, time: int, bits: int, prev: Link | None) -> None:
        self.block_hash, self.height, self.time, self.bits, self.prev = block_hash, height, time, bits, prev

    def median_time_past(self) -> int:
        times: list[int] = []
        walk: Link | None = self
        while walk is not None and len(times) < 11:
            times.append(walk.time)
            walk = walk.prev
        return sorted(times)[len(times) // 2]


def _params() -> ChainParams:
    return get_params("regtest", kawpow_activation_time=CORE_REGTEST_KAWPOW_TIME)


def _p2pkh(key_hash: bytes) -> bytes:
    return build_script(Op.OP_DUP, Op.OP_HASH160, key_hash, Op.OP_EQUALVERIFY, Op.OP_CHECKSIG)


def _open(netdir: Path, params: ChainParams, options: ChainStateOptions) -> ChainState:
    (netdir / "blocks").mkdir(parents=True, exist_ok=True)
    store = BlockStore(netdir / "blocks", params.message_start)
    tree = BlockTreeDB(netdir / "blocks" / "index")
    coins = ChainStateDB(netdir / "chainstate", wipe=options.reindex_chainstate)
    tree.start()
    coins.start()
    cs = ChainState(params, store, tree, coins, options=options)
    cs.activate_at_start = False
    cs.start()
    return cs


def _close(cs: ChainState) -> None:
    cs.stop()
    cs.coins_db.stop()
    cs.block_tree.stop()


def build(netdir: Path, blocks: int, txs: int) -> dict[str, float]:
    """Mine and store the chain (blocks accepted and indexed, not connected)."""
    params = _params()
    keys = [PrivateKey(hashlib.sha256(b"connect-bench-%d" % i).digest()) for i in range(KEYS)]
    pubs = [k.public_key.format(compressed=True) for k in keys]
    scripts = [_p2pkh(hash160(p)) for p in pubs]
    cs = _open(netdir, params, ChainStateOptions(check_blocks=0))
    g = params.genesis.header
    tip = Link(params.genesis_hash, 0, g.time, g.bits, None)
    pool: deque[tuple[OutPoint, int, int]] = deque()  # (outpoint, value, key)
    coinbases: list[Transaction] = []
    started = time.perf_counter()
    sign_seconds = 0.0
    for height in range(1, MATURITY_BLOCKS + blocks + 1):
        block_txs: list[Transaction] = []
        if height > MATURITY_BLOCKS:
            cb = coinbases[height - MATURITY_BLOCKS - 1]
            pool.append((OutPoint(cb.txid, 0), cb.vout[0].value, 0))
            t0 = time.perf_counter()
            for n in range(txs if len(pool) > 1 else 1):
                outpoint, value, k = pool.popleft()
                # The first payment fans a coinbase out; later ones split one coin in two.
                parts = 4 * txs if value > 10**9 and len(pool) < txs else 2
                share = (value - FEE) // parts
                outs = tuple(TxOut(share, scripts[(k + i + n) % KEYS]) for i in range(parts))
                unsigned = Transaction(2, (TxIn(outpoint, b"", 0xFFFFFFFF),), outs, 0)
                sighash = legacy_signature_hash(scripts[k], unsigned, 0, SIGHASH_ALL)
                sig = keys[k].sign(sighash, hasher=None) + bytes((SIGHASH_ALL,))
                script_sig = push_data(sig) + push_data(pubs[k])
                tx = Transaction(2, (TxIn(outpoint, script_sig, 0xFFFFFFFF),), outs, 0)
                block_txs.append(tx)
                pool.extend((OutPoint(tx.txid, i), share, (k + i + n) % KEYS) for i in range(parts))
            sign_seconds += time.perf_counter() - t0
        when = tip.time + 60
        bits = get_next_work_required(tip, when, params)
        block = create_block(params, tip.block_hash, tip.height, tip.median_time_past(), bits, block_txs,
                             scripts[0], when, fees=FEE * len(block_txs), extra_nonce=height)
        solved = mine_block(block, params)
        assert solved is not None
        coinbases.append(solved.vtx[0])
        state, _ = cs.accept_block(solved)
        assert state, state
        tip = Link(solved.hash, height, when, bits, tip)
        if height % 200 == 0:
            print(f"  built {height} blocks, {time.perf_counter() - started:.1f} s", file=sys.stderr)
    cs.write_block_index()
    _close(cs)
    total = time.perf_counter() - started
    return {"build_seconds": total, "sign_seconds": sign_seconds}


def _warm_up_scripts() -> None:
    """Verify one signature first, so one-off set-up of the script engine is not counted."""
    key = PrivateKey(hashlib.sha256(b"connect-bench-warm-up").digest())
    pub = key.public_key.format(compressed=True)
    script = _p2pkh(hash160(pub))
    unsigned = Transaction(2, (TxIn(OutPoint(b"\x01" * 32, 0), b"", 0xFFFFFFFF),), (TxOut(1, script),), 0)
    sighash = legacy_signature_hash(script, unsigned, 0, SIGHASH_ALL)
    sig = key.sign(sighash, hasher=None) + bytes((SIGHASH_ALL,))
    tx = Transaction(2, (TxIn(OutPoint(b"\x01" * 32, 0), push_data(sig) + push_data(pub), 0xFFFFFFFF),),
                     unsigned.vout, 0)
    verify_inputs_batch([SpendInput(tx, 0, script, 2, PrecomputedTxData(tx))], block_script_flags_all())


def block_script_flags_all() -> int:
    return (SCRIPT_VERIFY_P2SH | SCRIPT_VERIFY_DERSIG | SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY
            | SCRIPT_VERIFY_CHECKSEQUENCEVERIFY | SCRIPT_VERIFY_WITNESS | SCRIPT_VERIFY_NULLDUMMY)


def measure(netdir: Path, mode: str, dbcache: int, par: int) -> dict[str, float]:
    """One -reindex-chainstate run in this process; returns its numbers."""
    _warm_up_scripts()
    params = _params()
    assume_valid = ZERO_HASH
    if mode == "assumevalid":
        activation.ASSUMEVALID_MIN_BURY_SECONDS = 0
        probe = _open(netdir, params, ChainStateOptions(check_blocks=0))
        best = probe.best_header
        assert best is not None
        assume_valid = best.block_hash
        _close(probe)
    options = ChainStateOptions(dbcache_mib=dbcache, assume_valid=assume_valid, check_blocks=0,
                                reindex_chainstate=True, script_threads=par)
    started = time.perf_counter()
    cs = _open(netdir, params, options)
    BlockImporter(cs).run()
    cs.flush()
    seconds = time.perf_counter() - started
    t = cs.timings
    result = {"seconds": seconds, "blocks": t.blocks, "transactions": t.transactions, "inputs": t.inputs,
              "read": t.read_seconds, "scripts": t.script_seconds, "utxo": t.utxo_seconds,
              "apply": t.apply_seconds, "flush": t.flush_seconds,
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "tip_height": cs.tip.height if cs.tip is not None else -1}
    _close(cs)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=2000, help="blocks of transactions (after 100 more)")
    parser.add_argument("--txs", type=int, default=100, help="transactions per block")
    parser.add_argument("--dbcache", type=int, default=450, help="-dbcache in MiB")
    parser.add_argument("--par", type=int, default=0, help="script threads (0: one per core)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "aipg-connect-bench")
    parser.add_argument("--rebuild", action="store_true", help="mine the chain again even if cached")
    parser.add_argument("--measure", choices=("full", "assumevalid"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    pristine = args.workdir / f"chain-{args.blocks}x{args.txs}"
    if args.measure:
        print(json.dumps(measure(args.workdir / "run", args.measure, args.dbcache, args.par)))
        return 0
    if args.rebuild or not (pristine / "done.json").exists():
        shutil.rmtree(pristine, ignore_errors=True)
        print(f"building {MATURITY_BLOCKS} + {args.blocks} blocks x {args.txs} P2PKH txs in {pristine}",
              file=sys.stderr)
        stats = build(pristine, args.blocks, args.txs)
        (pristine / "done.json").write_text(json.dumps(stats))
    built = json.loads((pristine / "done.json").read_text())
    print(f"chain: {MATURITY_BLOCKS} + {args.blocks} blocks x {args.txs} txs; "
          f"build {built['build_seconds']:.1f} s (signing {built['sign_seconds']:.1f} s, X16RV2 headers)")
    for mode in ("full", "assumevalid"):
        run_dir = args.workdir / "run"
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(pristine, run_dir)
        out = subprocess.run([sys.executable, __file__, "--measure", mode, "--workdir", str(args.workdir),
                              "--dbcache", str(args.dbcache), "--par", str(args.par)],
                             check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        s = r["seconds"]
        label = "full script checks" if mode == "full" else "assumevalid (scripts skipped)"
        rates = (f"{r['blocks'] / s:.0f} blocks/s, {r['transactions'] / s:.0f} tx/s, "
                 f"{r['inputs'] / s:.0f} inputs/s")
        print(f"reindex-chainstate, {label}: {r['blocks']} blocks in {s:.2f} s: {rates}")
        print(f"  time: read {r['read']:.2f} s, scripts {r['scripts']:.2f} s, UTXO access {r['utxo']:.2f} s, "
              f"apply {r['apply']:.2f} s, LevelDB flush {r['flush']:.2f} s; "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB at -dbcache={args.dbcache}")
    shutil.rmtree(args.workdir / "run", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
