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


def opts(retain=None, capacity=0, drop_oldest=False):
    return [(0 if retain is None else retain + 1) | (capacity << 3) | (0x20 if drop_oldest else 0)]


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
    "inbox_closed": opts() + spawn() + spawn() + [EMIT, 0, *V_INT, FORGET_RETAIN, 3] + complete(0) + [EMIT, 1, *V_INT]
    + [CANCEL, 1] + complete(1) + body(VALUE) + advance(0),
}
for name, seq in seqs.items():
    put("fuzz_api", bytes(b & 0xFF for b in seq), "seed-" + name)

print("corpus:", {d.name: len(list(d.iterdir())) for d in sorted(CORPUS.iterdir())})
