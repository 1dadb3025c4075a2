"""PoUW job methods: pouw_submitjob, pouw_getjob, pouw_getreceipt, pouw_verifyreceipt,
pouw_listworkers, pouw_getstats.

Owns the JSON shapes of jobs, receipts, workers and statistics for operators. It must never hold
PoUW state: the node's PouwService (its runtime: gateway, queue, store, validator) has it. These
methods run on RPC worker threads and wait on the node's event loop for the job layer.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aipgd.core.serialize import DeserializationError
from pouw.api import ApiError, ApiRequest, parse_chat, parse_completion, parse_embeddings
from pouw.attestation import Attestation
from pouw.errors import PouwError
from pouw.jobspec import JobSpec, Tier
from pouw.queue import PRIORITY_PAID
from pouw.receipt import Receipt
from pouw.signing import verify_receipt_signature
from pouw.store import parse_id
from rpc.dispatch import RPCContext
from rpc.errors import RPCError, RPCErrorCode
from rpc.registry import Args, Kind, Method, Param, examples

if TYPE_CHECKING:
    from pouw.runtime import PouwRuntime

CATEGORY = "pouw"
DISABLED_MESSAGE = ("Method not found (disabled): PoUW is off; start aipgd with -pouw, -pouwapi or "
                    "-pouwvalidator")
_KINDS = {"llm.completion": parse_completion, "llm.chat": parse_chat, "embed": parse_embeddings}


def _runtime(ctx: RPCContext) -> PouwRuntime:
    service = getattr(ctx, "pouw", None)
    runtime: PouwRuntime | None = getattr(service, "runtime", None)
    if service is None or not service.running or runtime is None:
        raise RPCError(RPCErrorCode.RPC_METHOD_NOT_FOUND, DISABLED_MESSAGE)
    return runtime


def _on_loop(runtime: PouwRuntime, coro: Any, timeout: float | None = None) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, runtime.loop).result(timeout)


def _id(value: Any, what: str) -> bytes:
    parsed = parse_id(str(value))
    if parsed is None:
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, f"{what} must be 64 hexadecimal characters")
    return parsed


def _api_error(exc: ApiError) -> RPCError:
    code = (RPCErrorCode.RPC_INVALID_PARAMETER if exc.status in (400, 404, 413)
            else RPCErrorCode.RPC_MISC_ERROR)
    return RPCError(code, f"{exc.message} ({exc.code or exc.type})")


def _attestation_json(a: Attestation) -> dict[str, Any]:
    return a.to_json()


def _receipt_json(runtime: PouwRuntime, r: Receipt) -> dict[str, Any]:
    out = {"receipt": r.to_json(), "hex": r.serialize().hex(),
           "signature_valid": verify_receipt_signature(r),
           "attestations": [_attestation_json(a) for a in runtime.store.attestations_for(r.id)]}
    grid = runtime.grid_bridge.grid_receipt(r.id) if runtime.grid_bridge is not None else None
    if grid is not None:
        out["grid_receipt"] = grid  # the grid worker's own EIP-191 receipt and its check
    return out


# --- pouw_submitjob -----------------------------------------------------------------------------------

def _submitjob(ctx: RPCContext, args: Args) -> Any:
    runtime = _runtime(ctx)
    request: dict[str, Any] = args[0]
    wait = True if args[1] is None else bool(args[1])
    kind = request.get("kind", "llm.completion")
    parse = _KINDS.get(kind) if isinstance(kind, str) else None
    if parse is None:
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, f"kind must be one of {', '.join(_KINDS)}")
    body = {k: v for k, v in request.items() if k != "kind"}
    try:
        api_request: ApiRequest = parse(body)
        if api_request.stream:
            raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, "stream is not available over RPC")
        # The operator's own jobs: highest priority, any worker, no admission or billing.
        spec = runtime.gateway.build_job(api_request, Tier.FREE, 0)
    except ApiError as exc:
        raise _api_error(exc) from None
    run = runtime.gateway.submit(spec, priority=PRIORITY_PAID)
    if not wait:
        runtime.loop.call_soon_threadsafe(runtime.spawn, run)
        return {"job_id": spec.id_hex}
    try:
        result = _on_loop(runtime, run)
    except ApiError as exc:
        raise _api_error(exc) from None
    receipt = result.outcome.receipt
    out: dict[str, Any] = {"job_id": spec.id_hex, "receipt_id": receipt.id_hex, "worker": result.worker_id,
                           "finish_reason": receipt.finish_reason.label,
                           "usage": receipt.usage.to_json()}
    if result.outcome.embeddings is not None:
        out["embeddings"] = [list(v) for v in result.outcome.embeddings]
    else:
        out["text"] = result.outcome.text or ""
    return out


# --- lookups ------------------------------------------------------------------------------------------

def _getjob(ctx: RPCContext, args: Args) -> Any:
    runtime = _runtime(ctx)
    job_id = _id(args[0], "job_id")
    spec = runtime.store.get_job(job_id)
    if spec is None:
        raise RPCError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY, "No such job")
    handle = runtime.queue.get(spec.id_hex)
    receipt = runtime.store.receipt_for_job(job_id)
    state = handle.state.value if handle is not None else ("done" if receipt is not None else "unknown")
    out: dict[str, Any] = {"job_id": spec.id_hex, "job": spec.to_json(), "hex": spec.serialize().hex(),
                           "state": state}
    if receipt is not None:
        out["receipt_id"] = receipt.id_hex
    return out


def _getreceipt(ctx: RPCContext, args: Args) -> Any:
    runtime = _runtime(ctx)
    receipt = runtime.store.get_receipt(_id(args[0], "receipt_id"))
    if receipt is None:
        raise RPCError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY, "No such receipt")
    return _receipt_json(runtime, receipt)


def _decode_receipt(runtime: PouwRuntime, value: str) -> Receipt:
    if len(value) == 64:
        found = runtime.store.get_receipt(_id(value, "receipt"))
        if found is None:
            raise RPCError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY, "No such receipt")
        return found
    try:
        return Receipt.from_bytes(bytes.fromhex(value))
    except (ValueError, DeserializationError, PouwError) as exc:
        raise RPCError(RPCErrorCode.RPC_DESERIALIZATION_ERROR, f"Receipt decode failed: {exc}") from None


def _verifyreceipt(ctx: RPCContext, args: Args) -> Any:
    runtime = _runtime(ctx)
    receipt = _decode_receipt(runtime, str(args[0]))
    spec: JobSpec | None
    if args[1] is not None:
        try:
            spec = JobSpec.from_bytes(bytes.fromhex(str(args[1])))
        except (ValueError, DeserializationError, PouwError) as exc:
            raise RPCError(RPCErrorCode.RPC_DESERIALIZATION_ERROR, f"Job decode failed: {exc}") from None
    else:
        spec = runtime.store.get_job(receipt.job_id)
    out: dict[str, Any] = {"receipt_id": receipt.id_hex, "signature_valid": verify_receipt_signature(receipt)}
    if spec is None:
        out["matches_job"] = None
        out["checked"] = False
        out["reason"] = "the job is unknown here: pass its hex to check the receipt against it"
        return out
    try:
        receipt.check_matches(spec)
        out["matches_job"] = True
    except PouwError as exc:
        out["matches_job"] = False
        out["reason"] = str(exc)
    if runtime.validator is None or not out["signature_valid"]:
        out["checked"] = False
        out.setdefault("reason", "this node is no validator (-pouwvalidator) or the signature is invalid")
        return out
    runtime.store.put_job(spec)
    attestation = _on_loop(runtime, runtime.consider(spec, receipt, force=True))
    out["checked"] = attestation is not None
    if attestation is not None:
        out["verdict"] = attestation.verdict.label
        out["score"] = attestation.score
        out["attestation"] = _attestation_json(attestation)
        out["attestation_hex"] = attestation.serialize().hex()
    else:
        out.setdefault("reason", "this validator cannot check the receipt (see debug.log)")
    return out


def _listworkers(ctx: RPCContext, args: Args) -> Any:
    runtime = _runtime(ctx)
    out = []
    for info in runtime.directory.workers():
        running, served, lost = runtime.directory.load(info.worker_id)
        out.append({
            "id": info.worker_id, "kind": info.kind, "pubkey": info.pubkey.hex() if info.pubkey else None,
            "trusted": info.trusted, "deterministic": info.deterministic,
            "models": [{"name": m.name, "sha256": m.sha256.hex() if m.sha256 else None,
                        "context_length": m.context_length} for m in info.models],
            "max_concurrency": info.max_concurrency, "running": running, "served": served, "lost": lost,
            "tokens_per_second": round(info.tokens_per_second, 2),
        })
    return out


def _getstats(ctx: RPCContext, args: Args) -> Any:
    runtime = _runtime(ctx)
    stats = runtime.gateway.stats
    queue = runtime.queue.stats()

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return {
        "submitted": stats.submitted, "completed": stats.completed, "failed": stats.failed,
        "rejected": stats.rejected, "retried": stats.retried, "bad_receipts": stats.bad_receipts,
        "prompt_tokens": stats.prompt_tokens, "completion_tokens": stats.completion_tokens,
        "by_tier": dict(stats.by_tier),
        "queue": {"queued_paid": queue.queued.get(PRIORITY_PAID, 0),
                  "queued_free": sum(v for k, v in queue.queued.items() if k != PRIORITY_PAID),
                  "running": queue.running, "max_concurrency": queue.max_concurrency,
                  "cancelled": queue.cancelled, "timed_out": queue.timed_out},
        "routing_latency_ms": {"p50": ms(stats.latency_percentile(0.5)),
                               "p99": ms(stats.latency_percentile(0.99)),
                               "samples": len(stats.routing_latency)},
        "workers": len(runtime.directory.workers()),
        "validator": runtime.validator is not None,
        "worker_pubkey": runtime.key.pubkey.hex(),
    }


SUBMITJOB_HELP = (
    "pouw_submitjob {request} ( wait )\n"
    "\nRuns a job on the grid from the operator: no rate limit or billing, paid-tier priority, any worker.\n"
    "\nArguments:\n"
    "1. request   (object, required) An OpenAI request body plus its kind:\n"
    '     {"kind": "llm.completion" | "llm.chat" | "embed", "model": "name[@sha256]",\n'
    '      "prompt": "..." | "messages": [...] | "input": [...], "max_tokens": n, "temperature": x,\n'
    '      "top_p": x, "top_k": n, "seed": n, "stop": [...]}\n'
    "2. wait      (boolean, optional, default=true) Wait for the result; false returns the job id at once\n"
    "\nResult:\n"
    '{ "job_id": "hex", "receipt_id": "hex", "worker": "id", "finish_reason": "...", "usage": {...},\n'
    '  "text": "..." | "embeddings": [[...]] }\n'
    + examples("pouw_submitjob", '\'{"model":"tiny","prompt":"Hello","max_tokens":8}\'',
               '{"model":"tiny","prompt":"Hello","max_tokens":8}')
)
GETJOB_HELP = (
    'pouw_getjob "job_id"\n'
    "\nThe job spec, its state (queued, running, done, failed, cancelled, timed_out) and its receipt id.\n"
    + examples("pouw_getjob", '"<job id>"')
)
GETRECEIPT_HELP = (
    'pouw_getreceipt "receipt_id"\n'
    "\nA stored receipt: its JSON form, canonical hex, whether the worker's signature verifies, and the\n"
    "attestations this node holds about it.\n"
    + examples("pouw_getreceipt", '"<receipt id>"')
)
VERIFYRECEIPT_HELP = (
    'pouw_verifyreceipt "receipt" ( "job" )\n'
    "\nChecks a receipt: its signature, that it answers its job and, on a validator (-pouwvalidator)\n"
    "holding the model, re-checks the output by teacher-forced scoring and signs an attestation.\n"
    "\nArguments:\n"
    '1. "receipt"  (string, required) A receipt id known here, or a receipt\'s hex\n'
    '2. "job"      (string, optional) The job spec\'s hex, when this node does not know the job\n'
    "\nResult:\n"
    '{ "receipt_id": "hex", "signature_valid": bool, "matches_job": bool|null, "checked": bool,\n'
    '  "verdict": "valid|invalid|inconclusive", "score": x, "attestation": {...}, "reason": "..." }\n'
    + examples("pouw_verifyreceipt", '"<receipt id>"')
)
LISTWORKERS_HELP = (
    "pouw_listworkers\n"
    "\nThe workers this node can route jobs to (its own backends, peers, grid workers), with their models,\n"
    "slots, load and measured speed.\n"
    + examples("pouw_listworkers")
)
GETSTATS_HELP = (
    "pouw_getstats\n"
    "\nCounters of this node's job layer: jobs, tokens, tiers, queue, routing latency.\n"
    + examples("pouw_getstats")
)

METHODS = (
    Method("pouw_submitjob", CATEGORY, _submitjob,
           (Param("request", Kind.OBJ), Param("wait", Kind.BOOL, required=False)), SUBMITJOB_HELP,
           offload=True),
    Method("pouw_getjob", CATEGORY, _getjob, (Param("job_id", Kind.STR),), GETJOB_HELP, offload=True),
    Method("pouw_getreceipt", CATEGORY, _getreceipt, (Param("receipt_id", Kind.STR),), GETRECEIPT_HELP,
           offload=True),
    Method("pouw_verifyreceipt", CATEGORY, _verifyreceipt,
           (Param("receipt", Kind.STR), Param("job", Kind.STR, required=False)), VERIFYRECEIPT_HELP,
           offload=True),
    Method("pouw_listworkers", CATEGORY, _listworkers, (), LISTWORKERS_HELP),
    Method("pouw_getstats", CATEGORY, _getstats, (), GETSTATS_HELP),
)
