#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/ (run from anywhere; idempotent).

fuzz_snapshot   : the awaken fixture, every snapshot value in scenarios/*.json (restore inputs and
                  snapshot outputs), a few small edge values.
fuzz_event_json : the same snapshots, plus the events, summaries and metas the scenarios expect.
fuzz_api        : hand-written call sequences in fuzz_api.cpp's byte format (see OPS below).

Reproducers of findings live beside the seeds as <target>/crash-* or regress-* files and are
never rewritten here.
"""
import hashlib
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def put(target, data, name=None):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    name = name or "seed-" + hashlib.sha1(data).hexdigest()[:12]
    (d / name).write_bytes(data)


def compact(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


# ---- JSON seeds ----------------------------------------------------------------------------------
fixture = (ROOT / "native_tests" / "fixtures" / "awaken_state.json").read_text()
put("fuzz_snapshot", fixture, "awaken_state.json")
put("fuzz_event_json", fixture, "awaken_state.json")

snapshots, others = [], []
for f in sorted((ROOT / "scenarios").glob("*.json")):
    sc = json.loads(f.read_text())
    for step, out in zip(sc["steps"], sc["expected"]):
        if step.get("op") == "restore" and isinstance(step.get("snapshot"), dict):
            snapshots.append(step["snapshot"])
        if step.get("op") == "snapshot" and isinstance(out, dict) and "tasks" in out:
            snapshots.append(out)
        if step.get("op") in ("drain", "list", "get") and out not in (None, [], {}):
            others.append(out)
seen = set()
for s in snapshots:
    t = compact(s)
    if t in seen or t == '{"tasks":{}}':
        continue
    seen.add(t)
    put("fuzz_snapshot", t)
    put("fuzz_event_json", t)
for o in others:
    t = compact(o)
    if t not in seen:
        seen.add(t)
        put("fuzz_event_json", t)
for t in ['{"tasks":{}}', "{}", "[]", "null", '{"tasks":null}',
          '{"tasks":{"bg_1":{"task_id":"bg_1","task_type":"shell","description":"d","status":"completed","created_at_ms":1}}}',
          '{"kind":"custom","task_id":"bg_0","event_type":"progress","payload":{"pct":50}}',
          '{"kind":"completed","task_id":"bg_0","result":null}',
          '{"kind":"failed","task_id":"bg_1","error":"boom"}',
          '{"kind":"cancelled","task_id":"bg_2"}',
          '{"task_id":"bg_3","run_id":"r","call_id":"c","agent_id":"a"}']:
    put("fuzz_snapshot", t)
    put("fuzz_event_json", t)

# ---- fuzz_api call sequences ---------------------------------------------------------------------
# Opcodes (first byte of an op, taken % 24) and their argument bytes, as in fuzz_api.cpp.
SPAWN, AGENT, BODY, COMPLETE, FAIL, EMIT, CANCEL, TREE, ALL, RUN = 0, 2, 3, 5, 7, 8, 9, 11, 12, 13
SEND, TAKE, ARM, ADVANCE, SAVE, RESTORE_SAVED, CRAFTED, FORGET_RETAIN, DRAIN, QUERIES = range(14, 24)
T1, T2, TE = 0, 1, 2                  # threads t1, t2, ""
SHELL, HTTP, SUBAGENT = 0, 1, 2      # task types
NONAME, A, B, PARENT, SELF = 0, 1, 2, 3, 4
V_NULL, V_INT, V_STR, V_OBJ, V_ARR = [0], [1, 7], [2, 1], [3, 9], [4]


def opts(retain=None, capacity=0, drop_oldest=False, grants=False, sched=None):
    o = (0 if retain is None else retain + 1) | (capacity << 3) | (0x20 if drop_oldest else 0) | (0x40 if grants else 0)
    # sched: one more byte (per_thread = s & 3; s & 4: a "shell" limit of 1 + (s >> 3 & 1);
    # s & 0x10: a cancel grace of 1 + (s >> 5 & 7) * 3 ms); opcode byte 71 is then op_sched.
    return [o] if sched is None else [o | 0x80, sched]


# With opts(grants=True), opcode byte 47 (also 95, 143, 191) grants ids: then a byte b (count b % 5;
# b // 5 % 4: 0-1 above every number seen, plus an offset byte; 2 at the end of the range, minus a
# byte; 3 from a stored number, picked by a byte).
GRANT = 47


def grant(count, mode=0, arg=0):
    return [GRANT, count + 5 * mode, arg]


def spawn(thread=T1, ttype=SHELL, name=NONAME, parent=(0,), ctx=(0,)):
    return [SPAWN, thread, ttype, name, *parent, *ctx]


def agent(thread=T1, name=NONAME):
    return [AGENT, thread, 0, name, 0, 0]


VALUE, SLEEP_EMIT, WAIT_CANCEL, THROW, SPAWN_CHILD, FAIL_BODY, MEDDLE, WAITER, AGENT_BODY = range(9)


def body(kind, thread=T1, ms=10, rounds=1, named=0, extra=()):
    return [BODY, thread, kind, ms, rounds - 1, 0, named, *extra]


def complete(ref, value=V_INT):
    return [COMPLETE, ref, *value]


def fail(ref):
    return [FAIL, ref, *V_STR, 3]


def advance(ms, mode=2):
    return [ADVANCE, ms, mode]


seqs = {
    "lifecycle": opts() + spawn() + spawn(T2, HTTP, A) + complete(0) + fail(1) + [DRAIN, 3] + [QUERIES, T1, 0],
    "cancel_then_settle": opts() + spawn() + [CANCEL, 0, CANCEL, 0] + complete(0) + [CANCEL, 0, DRAIN, 0],
    "tree_lineage": opts() + spawn(name=A) + spawn(parent=(1, 0)) + spawn(ctx=(1, 1)) + spawn(T2, ctx=(2 | 8,))
    + [TREE, 0] + complete(0) + complete(1) + complete(2) + [RUN, 0, DRAIN, 3],
    "bodies": opts() + body(VALUE) + body(SLEEP_EMIT, rounds=3) + body(WAIT_CANCEL) + body(THROW) + body(SPAWN_CHILD)
    + body(FAIL_BODY) + body(AGENT_BODY)
    + advance(5, 1) + advance(40) + [CANCEL, 2, CANCEL, 6] + advance(0) + [DRAIN, 3],
    "agent_inbox": opts(capacity=2, drop_oldest=True) + agent() + [SEND, 0, 1, SEND, 0, 1, SEND, 0, 1, TAKE, 0, 1]
    + body(AGENT_BODY) + [SEND, 1, 1] + advance(0) + [TAKE, 0, 0] + complete(0) + [CANCEL, 1] + advance(0) + [DRAIN, 3],
    "agent_reject": opts(capacity=1) + agent(T2) + [SEND, 0, 1, SEND, 0, 1, SEND, 0, 0] + [CANCEL, 0] + complete(0, V_OBJ),
    "timers": opts() + spawn() + spawn(T2) + [ARM, 0, 10, ARM, 1, 30] + advance(5, 1) + advance(10)
    + [CANCEL, 1] + advance(0) + [ARM, 1, 5] + complete(0) + [ARM, 0, 1, DRAIN, 3],
    "snapshot_restore": opts() + spawn(name=A) + spawn(T2) + body(VALUE) + advance(0) + complete(1, V_ARR)
    + [SAVE, 3, FORGET_RETAIN, 1, 1, RESTORE_SAVED, 0, T2] + [CRAFTED, T2, 1, 0x08, 0, 5, 0]
    + [SAVE, 0, RESTORE_SAVED, 1, TE, QUERIES, T2, 1],
    "retention": opts(retain=1) + spawn() + spawn() + spawn() + complete(0) + complete(1) + complete(2)
    + [FORGET_RETAIN, 0, 0] + spawn() + fail(3) + [DRAIN, 3, QUERIES, T1, 0],
    "names": opts() + spawn(name=A) + spawn(name=A) + spawn(T2, name=A) + spawn(name=PARENT) + spawn(name=SELF)
    + complete(0) + spawn(name=A) + [ALL, T1] + [DRAIN, 0],
    "emit_order": opts() + spawn() + [EMIT, 0, *V_INT, EMIT, 0, *V_OBJ, EMIT, 0, *V_NULL] + body(SLEEP_EMIT, rounds=2)
    + advance(20) + [DRAIN, 4] + complete(0) + [EMIT, 0, *V_INT, DRAIN, 3],
    # bodies calling into the manager while they run; a body waiting for another task's end
    "meddle_wait": opts() + spawn() + spawn(T2) + body(MEDDLE, extra=(0, 1)) + body(MEDDLE, extra=(1, 0))
    + body(WAITER, extra=(0,)) + body(WAITER, extra=(1,)) + body(MEDDLE, extra=(0, 3)) + advance(0) + complete(1)
    + advance(0) + [DRAIN, 3],
    # the owner inbox's receiver dropped mid-run: later events reach the fallback
    # ids granted in blocks: spawns take them in grant order, a restore takes its numbers out, none
    # left is IdsUnavailable; blocks at the end of the range and over stored numbers
    "granted_ids": opts(grants=True) + spawn() + grant(3, 0, 1) + spawn() + [CRAFTED, T1, 0, 24, 1, 0, 0] + spawn(T2)
    + body(VALUE) + spawn() + advance(0) + grant(2, 3, 0) + spawn() + grant(2, 2, 0) + spawn() + spawn()
    + [SAVE, 0, RESTORE_SAVED, 0, T2, RESTORE_SAVED, 0, T1] + grant(2, 1, 2) + spawn(T2) + complete(0) + [DRAIN, 3],
    "inbox_closed": opts() + spawn() + spawn() + [EMIT, 0, *V_INT, FORGET_RETAIN, 3] + complete(0) + [EMIT, 1, *V_INT]
    + [CANCEL, 1] + complete(1) + body(VALUE) + advance(0),
}
# Re-entrant operations (opcode bytes 232..254, fuzz_api.cpp's kReentryBase): 232 spawns a body that
# calls back into the manager, 234 arms a callback, 236 drops the harness's reference, 237 / 238
# settle / cancel without the harness holding the manager, 239 disarms.
RE_BODY, RE_ARM, RE_DROP, RE_COMPLETE, RE_CANCEL, RE_DISARM = 232, 234, 236, 237, 238, 239
# acts (first byte % 9; | 0x80 names a target by ref, else the task at hand), then an argument byte
FORGET, CANCEL_A, CANCEL_TREE_A, CANCEL_ALL_A, SPAWN_HOST_A, SPAWN_BODY_A, RESTORE_A, DROP_A, RUN_IDLE_A = range(9)
RE_REENTER, RE_OWNS, RE_DTOR, RE_WAIT_THEN = range(4)
AT_END, AT_CANCEL, AT_FALLBACK, AT_COMMIT = range(4)


def act(a, ref=None, arg=0):
    return [a | 0x80, ref, arg] if ref is not None else [a, arg]


def re_body(kind, acts, thread=T1, flags=0, target=None):
    # flags: 1 two acts; 2 hand the harness's reference to the body (OwnsManager); 4..12 yields; 16 emit
    return [RE_BODY, thread, kind, flags | (1 if len(acts) > 1 else 0), *sum(acts, [])] + ([target] if target is not None else [])


def arm(where, acts, shots=1):
    return [RE_ARM, where | ((shots - 1) << 2) | (0x10 if len(acts) > 1 else 0), *sum(acts, [])]


seqs.update({
    # bodies calling back: cancel_all, spawn, run_until_idle, restore; a body sharing its manager
    "reentry_bodies": opts() + spawn() + [SAVE, 3] + re_body(RE_REENTER, [act(CANCEL_ALL_A), act(SPAWN_HOST_A)])
    + re_body(RE_REENTER, [act(RUN_IDLE_A), act(RESTORE_A)]) + body(VALUE) + re_body(RE_OWNS, [act(FORGET)], flags=4 | 16)
    + re_body(RE_DTOR, [act(CANCEL_A), act(SPAWN_BODY_A)]) + re_body(RE_WAIT_THEN, [act(FORGET, 0)], target=0)
    + advance(0) + complete(0) + advance(0) + [DRAIN, 3],
    # callbacks calling back: on_task_end forgets and spawns, on_cancel_requested cancels the tree,
    # the fallback (receiver dropped) forgets another task, a commit hook cancels and restores
    "reentry_callbacks": opts() + spawn() + spawn() + complete(1) + arm(AT_END, [act(FORGET), act(SPAWN_BODY_A)])
    + arm(AT_CANCEL, [act(CANCEL_TREE_A, 0)]) + [CANCEL, 0] + complete(0) + [FORGET_RETAIN, 3]
    + arm(AT_FALLBACK, [act(FORGET, 1)]) + spawn() + [RE_COMPLETE, 0, 3, *V_INT] + arm(AT_COMMIT, [act(CANCEL_A), act(RESTORE_A)])
    + body(VALUE) + advance(0) + [RE_DISARM, DRAIN, 3],
    # the harness drops its reference while tasks live; the rest runs against a fresh manager
    "reentry_drop": opts() + spawn() + body(SLEEP_EMIT) + body(WAIT_CANCEL) + [RE_DROP]
    + spawn() + complete(0) + [DRAIN, 3],
})

# Scheduling (opts(sched=...)): op_sched is [SCHED, b, thread, timeout % 50]; b % 6: 0/1 a host
# spawn with a deadline (type by b >> 3 & 1), 2 a sleeping body with one, 3 set_concurrency
# (b & 8: per_thread (b >> 4) % 3, 0 refused; b & 0x40: a shell limit), 4 begin_shutdown,
# 5 finish_shutdown.
SCHED = 71


def sched(b, thread=T1, timeout=10):
    return [SCHED, b, thread, timeout]


seqs.update({
    "sched_limits": opts(sched=0x01 | 0x04 | 0x10) + spawn() + spawn() + spawn(T2) + body(VALUE) + body(SLEEP_EMIT)
    + [ARM, 1, 5] + complete(0) + [CANCEL, 2] + advance(0) + sched(3 | 0x08 | (2 << 4)) + advance(20) + [CANCEL, 1]
    + advance(10) + [DRAIN, 3, QUERIES, T1, 0],
    "sched_deadline": opts(sched=0x10) + sched(0, T1, 10) + sched(2, T2, 15) + spawn() + advance(5) + [EMIT, 0, *V_INT]
    + advance(10) + complete(0) + complete(2) + sched(1, T2, 0) + advance(0) + [DRAIN, 3],
    "sched_shutdown": opts(sched=0x02) + spawn() + spawn() + spawn() + body(WAIT_CANCEL) + body(SLEEP_EMIT, ms=40)
    + advance(0) + [CANCEL, 0] + sched(4) + spawn() + body(VALUE) + complete(1) + advance(5) + sched(4) + sched(5)
    + advance(50) + [DRAIN, 3, QUERIES, T1, 0],
})

for name, seq in seqs.items():
    put("fuzz_api", bytes(b & 0xFF for b in seq), "seed-" + name)

print("corpus:", {d.name: len(list(d.iterdir())) for d in sorted(CORPUS.iterdir())})
