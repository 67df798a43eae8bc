// Re-entry: user code the manager calls (bodies, the destructors of their captures, an inbox's
// fallback, the manager's hooks, the store's commit hook, wait() continuations) calling back into
// the manager, or destroying it. Each test is one re-entry point; the ASan build is what proves
// the memory side (docs/lifetime.md gives the rules these tests pin).

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bgtasks/bgtasks.hpp"
#include "support.hpp"

namespace {

using namespace bgtasks;

// The manager's keys registered in `store`, as the plugin does (the plugin's copy of the manager
// is dropped before returning: the caller's pointer stays the only owner).
void install(const std::shared_ptr<BackgroundTaskManager>& m, const std::shared_ptr<StateStore>& store) {
  EXPECT_TRUE(m->set_store(store).ok());
  auto env = ExecutionEnv::from_plugins({std::make_shared<BackgroundTaskPlugin>(m)});
  ASSERT_TRUE(env.ok());
  ASSERT_TRUE(store->register_keys(env->key_registrations).ok());
}

// Sets *flag when destroyed: a capture that tells when a body's frame is gone.
struct SetOnDestroy {
  bool* flag;
  explicit SetOnDestroy(bool* f) : flag(f) {}
  SetOnDestroy(const SetOnDestroy& o) : flag(o.flag) {}
  ~SetOnDestroy() {
    if (flag) *flag = true;
  }
};

// Runs `fn` when destroyed (a capture whose destructor calls back into the manager).
struct RunOnDestroy {
  std::shared_ptr<std::function<void()>> fn;
  RunOnDestroy() = default;
  explicit RunOnDestroy(std::shared_ptr<std::function<void()>> f) : fn(std::move(f)) {}
  RunOnDestroy(const RunOnDestroy&) = default;
  RunOnDestroy(RunOnDestroy&&) noexcept = default;
  ~RunOnDestroy() {
    if (fn && fn.use_count() == 1 && *fn) (*fn)();
  }
};

const TaskStatus* stored_status(const StateStore& store, const TaskId& id) {
  const auto* s = store.peek<BackgroundTaskStateKey>();
  if (!s) return nullptr;
  auto it = s->tasks.find(id);
  return it == s->tasks.end() ? nullptr : &it->second.status;
}

struct Rig {
  ManualClock clock{1'000};
  Executor exec{clock};
  std::shared_ptr<StateStore> store = std::make_shared<StateStore>();
  std::shared_ptr<BackgroundTaskManager> m = std::make_shared<BackgroundTaskManager>(exec);
  std::weak_ptr<BackgroundTaskManager> watch = m;
  std::optional<InboxReceiver> rx;
  explicit Rig(bool with_inbox = true) {
    install(m, store);
    if (with_inbox) {
      auto [tx, r] = inbox_channel();
      m->set_owner_inbox(std::move(tx));
      rx.emplace(std::move(r));
    }
  }
};

TEST(Reentry, ABodyHoldingTheLastReferenceToItsManagerRecordsItsEndThenFreesTheManager) {
  Rig r;
  bool frame_gone = false;
  auto id = r.m->spawn("t", "job", std::nullopt, "owns its manager", {},
                       [keep = r.m, flag = SetOnDestroy(&frame_gone)](TaskContext) -> Co<TaskResult> {
                         co_return TaskResult::success(json(7));
                       });
  ASSERT_TRUE(id.ok());
  r.m.reset();
  ASSERT_FALSE(r.watch.expired()) << "the body's capture keeps it";
  r.exec.run_until_idle();
  EXPECT_TRUE(frame_gone);
  EXPECT_TRUE(r.watch.expired()) << "the frame held the last reference";
  ASSERT_NE(stored_status(*r.store, *id), nullptr);
  EXPECT_EQ(*stored_status(*r.store, *id), TaskStatus::Completed) << "the end was recorded first";
  auto events = r.rx->drain();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["kind"], "completed");
  EXPECT_EQ(events[0]["result"], 7);
}

TEST(Reentry, ABodyThatDropsItsManagerInsideItsStepIsFreedOnceTheStepReturns) {
  for (const bool suspend_after : {false, true}) {
    SCOPED_TRACE(suspend_after ? "suspends after dropping it" : "returns after dropping it");
    Rig r;
    bool frame_gone = false;
    std::shared_ptr<BackgroundTaskManager>* holder = &r.m;
    auto id = r.m->spawn("t", "job", std::nullopt, "drops its manager", {},
                         [holder, suspend_after, flag = SetOnDestroy(&frame_gone)](TaskContext ctx) -> Co<TaskResult> {
                           holder->reset();  // the last owner: the manager goes now, mid-step
                           EXPECT_EQ(ctx.task_id(), "bg_0") << "the context stays usable";
                           if (suspend_after) co_await ctx.sleep(10);
                           co_return TaskResult::success(json(1));
                         });
    ASSERT_TRUE(id.ok());
    r.exec.run_until_idle();
    EXPECT_TRUE(r.watch.expired());
    EXPECT_TRUE(frame_gone) << "the frame is destroyed once its step returns";
    EXPECT_FALSE(r.exec.next_deadline().has_value()) << "its sleep's timer went with it";
    EXPECT_FALSE(r.exec.has_ready());
    EXPECT_EQ(*stored_status(*r.store, *id), TaskStatus::Running) << "nothing is committed once the manager is gone";
    EXPECT_TRUE(r.rx->drain().empty());
  }
}

TEST(Reentry, AClosedInboxFallbackThatForgetsTheEndingTaskAndSpawnsLeavesItsEndIntact) {
  Rig r(false);
  auto& m = *r.m;
  bool forgot = false;
  std::vector<TaskId> spawned;
  auto [tx, rx] = inbox_channel_with_fallback([&](const json& ev) {
    if (ev.value("kind", "") == "custom") return;
    forgot = m.forget(ev["task_id"].get<std::string>());
    for (int i = 0; i < 4; ++i) spawned.push_back(*m.spawn_host("t", "after", std::nullopt, "reuses the block", {}));
  });
  m.set_owner_inbox(std::move(tx));
  rx.close();
  std::vector<TaskSummary> ended;
  m.set_hooks(ManagerHooks{nullptr, [&](const TaskSummary& s) { ended.push_back(s); }});

  auto host = m.spawn_host("t", "host", std::nullopt, "settled by the host", {});
  ASSERT_TRUE(m.complete(*host, json("done")).ok());
  EXPECT_TRUE(forgot);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].task_id, *host);
  EXPECT_EQ(ended[0].status, TaskStatus::Completed);
  EXPECT_FALSE(m.get(*host).has_value());

  forgot = false;
  auto coro = m.spawn("t", "coro", std::nullopt, "a body", {},
                      [](TaskContext) -> Co<TaskResult> { co_return TaskResult::failed("boom"); });
  r.exec.run_until_idle();
  EXPECT_TRUE(forgot);
  ASSERT_EQ(ended.size(), 2u);
  EXPECT_EQ(ended[1].task_id, *coro);
  EXPECT_EQ(ended[1].status, TaskStatus::Failed);
  EXPECT_EQ(spawned.size(), 8u);
  for (const auto& id : spawned) EXPECT_EQ(m.get(id)->status, TaskStatus::Running);
}

TEST(Reentry, AFallbackThatDestroysTheManagerEndsItsCompletionWithoutTouchingIt) {
  Rig r(false);
  bool hook_ran = false;
  auto [tx, rx] = inbox_channel_with_fallback([&](const json&) { r.m.reset(); });
  r.m->set_owner_inbox(std::move(tx));
  r.m->set_hooks(ManagerHooks{nullptr, [&](const TaskSummary&) { hook_ran = true; }});
  rx.close();
  auto id = r.m->spawn_host("t", "host", std::nullopt, "d", {});
  BackgroundTaskManager* raw = r.m.get();
  ASSERT_TRUE(raw->complete(*id, json(1)).ok());
  EXPECT_TRUE(r.watch.expired());
  EXPECT_FALSE(hook_ran) << "the manager was gone before its end hook";
  EXPECT_EQ(*stored_status(*r.store, *id), TaskStatus::Completed) << "committed before the event was sent";
}

TEST(Reentry, AnEndHookThatForgetsTheTaskReplacesTheHooksAndDestroysTheManager) {
  Rig r;
  int calls = 0;
  r.m->set_hooks(ManagerHooks{nullptr, [&, marker = std::make_shared<int>(5)](const TaskSummary& s) {
                                ++calls;
                                EXPECT_TRUE(r.m->forget(s.task_id));
                                r.m->set_hooks({});  // destroys this very lambda's stored copy
                                EXPECT_EQ(*marker, 5) << "the running hook outlives its replacement";
                                r.m.reset();
                              }});
  auto id = r.m->spawn_host("t", "host", std::nullopt, "d", {});
  BackgroundTaskManager* raw = r.m.get();
  ASSERT_TRUE(raw->complete(*id, json(1)).ok());
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(r.watch.expired());
  EXPECT_EQ(stored_status(*r.store, *id), nullptr) << "forgotten by the hook";
}

TEST(Reentry, ACommitHookThatForgetsTheTaskRetentionIsForgettingLeavesRetentionIntact) {
  Rig r;
  auto& m = *r.m;
  m.set_retain_finished(1);
  auto a = m.spawn_host("t", "job", std::nullopt, "a", {});
  auto b = m.spawn_host("t", "job", std::nullopt, "b", {});
  ASSERT_TRUE(m.complete(*a, json(1)).ok());
  bool inside = false;
  int inner_forgets = 0;
  r.store->set_commit_hook([&](const std::vector<std::string_view>&) -> Result<void> {
    // When retention forgets `a`, forget it first from inside that commit.
    if (!inside && m.get(*a) && m.get(*b) && is_terminal(m.get(*b)->status)) {
      inside = true;
      if (m.forget(*a)) ++inner_forgets;
      inside = false;
    }
    return {};
  });
  ASSERT_TRUE(m.complete(*b, json(2)).ok());
  EXPECT_EQ(inner_forgets, 1);
  EXPECT_FALSE(m.get(*a).has_value());
  EXPECT_EQ(m.get(*b)->status, TaskStatus::Completed);
  EXPECT_FALSE(m.forget(*a)) << "nothing left of it";
  // The manager goes on: a new task ends and retention keeps only it.
  auto c = m.spawn_host("t", "job", std::nullopt, "c", {});
  ASSERT_TRUE(m.complete(*c, json(3)).ok());
  EXPECT_FALSE(m.get(*b).has_value());
  EXPECT_EQ(m.list("t").size(), 1u);
}

TEST(Reentry, ACommitHookThatDestroysTheManagerRefusesTheSpawnAndKeepsTheStoreAliveUntilItReturns) {
  ManualClock clock{0};
  Executor exec{clock};
  auto m = std::make_shared<BackgroundTaskManager>(exec);
  std::weak_ptr<BackgroundTaskManager> watch = m;
  std::weak_ptr<StateStore> store_watch;
  {
    auto store = std::make_shared<StateStore>();
    store_watch = store;
    install(m, store);
    store->set_commit_hook([&](const std::vector<std::string_view>&) -> Result<void> {
      m.reset();  // the manager held the store's last reference
      return {};
    });
  }
  BackgroundTaskManager* raw = m.get();
  auto id = raw->spawn("t", "job", std::nullopt, "d", {}, [](TaskContext) -> Co<TaskResult> {
    ADD_FAILURE() << "a refused spawn's body never runs";
    co_return TaskResult::cancelled();
  });
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().code, Errc::InvalidArgument);
  EXPECT_NE(id.error().message.find("destroyed"), std::string::npos) << id.error().message;
  EXPECT_TRUE(watch.expired());
  EXPECT_TRUE(store_watch.expired()) << "released once spawn returned";
  exec.run_until_idle();
}

TEST(Reentry, ACommitHookThatDestroysTheManagerStopsForgetAndRestore) {
  for (const std::string what : {"forget", "restore"}) {
    SCOPED_TRACE(what);
    Rig r;
    auto id = r.m->spawn_host("t", "job", std::nullopt, "d", {});
    ASSERT_TRUE(r.m->complete(*id, json(1)).ok());
    r.store->set_commit_hook([&](const std::vector<std::string_view>&) -> Result<void> {
      r.m.reset();
      return {};
    });
    BackgroundTaskManager* raw = r.m.get();
    if (what == "forget") {
      EXPECT_FALSE(raw->forget(*id)) << "the manager went before the entry was removed";
      EXPECT_NE(stored_status(*r.store, *id), nullptr);
    } else {
      auto added =
          raw->restore_json("u", R"({"tasks":{"x":{"task_id":"x","task_type":"a","description":"d",)"
                                 R"("status":"completed","created_at_ms":1},"y":{"task_id":"y",)"
                                 R"("task_type":"a","description":"d","status":"running","created_at_ms":1}}})");
      ASSERT_TRUE(added.ok());
      EXPECT_EQ(added->added, 0u) << "the first commit's hook destroyed the manager";
    }
    EXPECT_TRUE(r.watch.expired());
  }
}

TEST(Reentry, ACancelHookThatDestroysTheManagerStopsCancelAllAndCancelTree) {
  for (const bool tree : {false, true}) {
    SCOPED_TRACE(tree ? "cancel_tree" : "cancel_all");
    Rig r;
    auto root = r.m->spawn_host("t", "job", std::nullopt, "root", {});
    TaskParentContext under_root;
    under_root.task_id = *root;
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(r.m->spawn_host("t", "job", std::nullopt, "child", under_root).ok());
    std::vector<TaskId> requested;
    r.m->set_hooks(ManagerHooks{[&](const TaskId& id) {
                                  requested.push_back(id);
                                  r.m.reset();
                                },
                                nullptr});
    BackgroundTaskManager* raw = r.m.get();
    const std::size_t n = tree ? raw->cancel_tree(*root) : raw->cancel_all("t");
    EXPECT_EQ(n, 1u) << "the walk stops with the manager";
    EXPECT_EQ(requested.size(), 1u);
    EXPECT_TRUE(r.watch.expired());
  }
}

TEST(Reentry, ACancelHookThatForgetsAndSpawnsDuringCancelAllCountsWhatItSignalled) {
  Rig r;
  auto& m = *r.m;
  std::vector<TaskId> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(*m.spawn_host("t", "job", std::nullopt, "d", {}));
  auto done = m.spawn_host("t", "job", std::nullopt, "finished", {});
  ASSERT_TRUE(m.complete(*done, json()).ok());
  int hook_calls = 0;
  m.set_hooks(ManagerHooks{[&](const TaskId& id) {
                             ++hook_calls;
                             if (id == ids[0]) {
                               EXPECT_TRUE(m.forget(*done));
                               EXPECT_FALSE(m.forget(ids[2])) << "live";
                               for (int i = 0; i < 40; ++i) (void)m.spawn_host("t", "later", std::nullopt, "d", {});
                             }
                           },
                           nullptr});
  EXPECT_EQ(m.cancel_all("t"), 3u) << "the tasks spawned meanwhile were not targets";
  EXPECT_EQ(hook_calls, 3);
}

TEST(Reentry, AFrameDestroyedWithItsManagerCannotSpawnAndFindsNoTask) {
  Rig r;
  auto& m = *r.m;
  struct Seen {
    bool ran = false;
    std::optional<Error> spawn_error;
    bool forgot = true, cancelled = true;
    std::size_t all = 99;
  };
  auto seen = std::make_shared<Seen>();
  auto live = m.spawn_host("t", "job", std::nullopt, "live", {});
  auto done = m.spawn_host("t", "job", std::nullopt, "done", {});
  ASSERT_TRUE(m.complete(*done, json()).ok());
  BackgroundTaskManager* raw = r.m.get();
  auto on_destroy = std::make_shared<std::function<void()>>([=] {
    seen->ran = true;
    auto id = raw->spawn_host("t", "job", std::nullopt, "from a destructor", {});
    if (!id.ok()) seen->spawn_error = id.error();
    seen->forgot = raw->forget(*done);
    seen->cancelled = raw->cancel(*live);
    seen->all = raw->cancel_all("t");
  });
  // Several suspended bodies, so the handle table is iterated past the one whose capture calls in.
  for (int i = 0; i < 20; ++i) {
    RunOnDestroy cap;
    if (i == 7) cap.fn = on_destroy;
    ASSERT_TRUE(m.spawn("t", "job", std::nullopt, "suspended", {}, [cap](TaskContext ctx) -> Co<TaskResult> {
                   co_await ctx.cancelled();
                   co_return TaskResult::cancelled();
                 }).ok());
  }
  on_destroy.reset();
  r.exec.run_until_idle();
  r.m.reset();
  EXPECT_TRUE(seen->ran);
  ASSERT_TRUE(seen->spawn_error.has_value());
  EXPECT_EQ(seen->spawn_error->code, Errc::InvalidArgument);
  EXPECT_FALSE(seen->forgot);
  EXPECT_FALSE(seen->cancelled);
  EXPECT_EQ(seen->all, 0u);
  EXPECT_FALSE(r.exec.has_ready());
}

TEST(Reentry, ACaptureDestroyedAfterItsTaskEndedMaySpawnAndForget) {
  Rig r;
  auto& m = *r.m;
  std::optional<TaskId> from_destructor;
  bool forgot = false;
  auto fn = std::make_shared<std::function<void()>>([&] {
    forgot = m.forget("bg_0");  // its own task: ended and recorded by now
    from_destructor = *m.spawn_host("t", "job", std::nullopt, "spawned by a capture", {});
  });
  RunOnDestroy cap(fn);
  fn.reset();
  auto id = m.spawn("t", "job", std::nullopt, "d", {},
                    [cap = std::move(cap)](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json(1)); });
  ASSERT_EQ(*id, "bg_0");
  r.exec.run_until_idle();
  EXPECT_TRUE(forgot);
  ASSERT_TRUE(from_destructor.has_value());
  EXPECT_EQ(m.get(*from_destructor)->status, TaskStatus::Running);
  auto events = r.rx->drain();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["kind"], "completed");
}

TEST(Reentry, ABodyFactoryThatThrowsLeavesNoStoredEntry) {
  Rig r;
  auto& m = *r.m;
  // Not a coroutine: it throws before any frame exists.
  auto throwing = [](TaskContext) -> Co<TaskResult> { throw std::runtime_error("no frame"); };
  EXPECT_THROW((void)m.spawn("t", "job", "named", "d", {}, throwing), std::runtime_error);
  EXPECT_EQ(stored_status(*r.store, "bg_0"), nullptr) << "no running entry without a handle";
  EXPECT_TRUE(m.list("t").empty());
  EXPECT_EQ(m.stats().live_bodies, 0u);
  // The id was taken (as a failed commit takes it); the name is free again.
  auto next = m.spawn("t", "job", "named", "d", {},
                      [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json(2)); });
  ASSERT_TRUE(next.ok()) << next.error().message;
  EXPECT_EQ(*next, "bg_1");
  r.exec.run_until_idle();
  EXPECT_EQ(m.get(*next)->status, TaskStatus::Completed);
}

TEST(Reentry, ABodyPollingTheExecutorInsideItsOwnStepIsNeverResumedWhileRunning) {
  Rig r;
  auto& m = *r.m;
  int a_steps_running = 0, max_nesting = 0;
  std::optional<TaskId> a;
  // B cancels A, completes, and wakes a waiter of A, all while A's step polls the executor.
  auto b_body = [&](TaskContext) -> Co<TaskResult> {
    EXPECT_TRUE(m.cancel(*a));
    co_return TaskResult::success(json("b"));
  };
  a = *m.spawn("t", "a", std::nullopt, "polls inside its step", {}, [&](TaskContext ctx) -> Co<TaskResult> {
    for (int round = 0; round < 3; ++round) {
      ++a_steps_running;
      max_nesting = std::max(max_nesting, a_steps_running);
      auto b = m.spawn("t", "b", std::nullopt, "d", {}, b_body);
      EXPECT_TRUE(b.ok());
      r.exec.run_until_idle();  // B runs here, inside A's step
      EXPECT_EQ(m.get(*b)->status, TaskStatus::Completed);
      --a_steps_running;
      co_await yield_now();
    }
    co_await ctx.cancelled();  // already requested: does not suspend
    co_return TaskResult::success(json("a"));
  });
  std::optional<TaskSummary> a_end;
  bool resumed = false;
  r.exec.spawn([](BackgroundTaskManager* mm, TaskId id, std::optional<TaskSummary>* out, bool* res) -> Co<void> {
    *out = co_await mm->wait(id);
    *res = true;
  }(&m, *a, &a_end, &resumed));
  r.exec.run_until_idle();
  EXPECT_EQ(max_nesting, 1) << "A never ran inside its own step";
  ASSERT_TRUE(resumed);
  EXPECT_EQ(a_end->status, TaskStatus::Cancelled);
}

TEST(Reentry, ACommitHookThatUninstallsThePluginFailsTheWriteWithUnknownKey) {
  Rig r;
  auto& m = *r.m;
  auto live = m.spawn_host("t", "job", std::nullopt, "d", {});
  r.store->set_commit_hook([&](const std::vector<std::string_view>&) -> Result<void> {
    (void)r.store->uninstall_plugin(BackgroundTaskPlugin::kName);
    r.store->set_commit_hook(nullptr);  // the running hook outlives its removal
    return {};
  });
  auto id = m.spawn_host("t", "job", std::nullopt, "d", {});
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().code, Errc::UnknownKey);
  EXPECT_FALSE(r.store->is_registered(BackgroundTaskStateKey::name));
  EXPECT_FALSE(m.get(*live).has_value()) << "the key's value went with the plugin";
  // A batch commit sees the same: the hook ran, the key is gone, nothing is applied.
  ASSERT_TRUE(r.store->register_keys({KeyRegistration::of<BackgroundTaskStateKey>("again")}).ok());
  r.store->set_commit_hook([&](const std::vector<std::string_view>&) -> Result<void> {
    (void)r.store->uninstall_plugin("again");
    return {};
  });
  const auto version = r.store->version();
  MutationBatch batch;
  batch.update<BackgroundTaskStateKey>(
      BackgroundTaskStateAction::upsert(bgtasks::testing::make_meta("z", "t", TaskStatus::Running)));
  auto committed = r.store->commit(std::move(batch));
  ASSERT_FALSE(committed.ok());
  EXPECT_EQ(committed.error().code, Errc::UnknownKey);
  EXPECT_EQ(r.store->peek<BackgroundTaskStateKey>(), nullptr);
  EXPECT_EQ(r.store->version(), version + 1) << "only the uninstall changed the store";
}

TEST(Reentry, ACommitHookThatRestoresWhileATaskEndsKeepsBoth) {
  Rig r;
  auto& m = *r.m;
  auto id = m.spawn("t", "job", std::nullopt, "d", {},
                    [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json(1)); });
  bool inside = false;
  std::optional<std::size_t> restored;
  r.store->set_commit_hook([&](const std::vector<std::string_view>&) -> Result<void> {
    if (!inside && !restored) {
      inside = true;
      auto n = m.restore_json("u", R"({"tasks":{"bg_40":{"task_id":"bg_40","task_type":"a","description":"d",)"
                                   R"("status":"running","created_at_ms":1}}})");
      if (n.ok()) restored = n->added;
      inside = false;
    }
    return {};
  });
  r.exec.run_until_idle();
  EXPECT_EQ(restored, 1u);
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Completed);
  EXPECT_EQ(m.get("bg_40")->status, TaskStatus::Failed) << "orphaned";
  EXPECT_EQ(m.next_task_number(), 41u);
}

TEST(Reentry, AWaitContinuationThatForgetsItsTaskAndDropsTheManager) {
  Rig r;
  bool done = false;
  auto id = r.m->spawn_host("t", "job", std::nullopt, "d", {});
  auto waiter = r.m->spawn("t", "waiter", std::nullopt, "d", {}, [&, target = *id](TaskContext) -> Co<TaskResult> {
    auto end = co_await r.m->wait(target);
    EXPECT_EQ(end->status, TaskStatus::Completed);
    EXPECT_TRUE(r.m->forget(target));
    r.m.reset();  // from the continuation of its own wait
    done = true;
    co_return TaskResult::success(json(1));
  });
  ASSERT_TRUE(waiter.ok());
  r.exec.run_until_idle();
  ASSERT_TRUE(r.m->complete(*id, json(1)).ok());
  r.exec.run_until_idle();
  EXPECT_TRUE(done);
  EXPECT_TRUE(r.watch.expired());
  EXPECT_FALSE(r.exec.has_ready());
}

TEST(Reentry, AnEndHookInstalledWhileATaskEndsGetsItsSummary) {
  for (const bool from_fallback : {false, true}) {
    SCOPED_TRACE(from_fallback ? "installed by a closed inbox's fallback" : "installed by the commit hook");
    Rig r(false);
    auto& m = *r.m;
    std::optional<TaskSummary> seen;
    bool installed = false;
    auto install_hook = [&] {
      if (installed) return;
      installed = true;
      m.set_hooks(ManagerHooks{nullptr, [&](const TaskSummary& s) { seen = s; }});
    };
    auto [tx, rx] = inbox_channel_with_fallback([&](const json&) {
      if (from_fallback) install_hook();
    });
    m.set_owner_inbox(std::move(tx));
    rx.close();
    auto id = m.spawn_host("t", "host", std::nullopt, "ends", {});
    r.store->set_commit_hook([&](const std::vector<std::string_view>&) -> Result<void> {
      if (!from_fallback) install_hook();
      return {};
    });
    ASSERT_TRUE(m.complete(*id, json("v")).ok());
    ASSERT_TRUE(seen.has_value());
    EXPECT_EQ(seen->task_id, *id);
    EXPECT_EQ(seen->description, "ends");
    EXPECT_EQ(seen->status, TaskStatus::Completed);
    EXPECT_EQ(seen->result, json("v"));
  }
}

TEST(Reentry, AFactoryThatSpawnsTheSameNameMakesTheOuterSpawnADuplicate) {
  Rig r;
  auto& m = *r.m;
  // A stateless callable that is not a coroutine is called inside spawn: it runs user code (here,
  // a spawn of the same name through a global), then returns the body.
  static BackgroundTaskManager* manager;
  static std::optional<TaskId> inner;
  manager = &m;
  struct Factory {
    Co<TaskResult> operator()(TaskContext ctx) const {
      inner = *manager->spawn_host("t", "job", "worker", "spawned by the factory", {});
      return [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json(1)); }(std::move(ctx));
    }
  };
  auto outer = m.spawn("t", "job", "worker", "outer", {}, Factory{});
  ASSERT_TRUE(inner.has_value());
  ASSERT_FALSE(outer.ok());
  EXPECT_EQ(outer.error().code, Errc::DuplicateName);
  std::size_t running_workers = 0;
  for (const auto& s : m.list("t")) running_workers += s.status == TaskStatus::Running;
  EXPECT_EQ(running_workers, 1u);
  r.exec.run_until_idle();
}

TEST(Reentry, ANameAndDescriptionViewingIntoTheBodysCallableAreStoredIntact) {
  Rig r;
  auto& m = *r.m;
  struct Job {
    std::string label;
    Co<TaskResult> operator()(TaskContext) const { co_return TaskResult::success(json(label)); }
  };
  Job job{"nightly build of everything"};
  Job short_job{"nightly"};
  auto a = m.spawn("t", "job", std::string_view(job.label), job.label, {}, std::move(job));
  auto b = m.spawn("t", "job", std::string_view(short_job.label), short_job.label, {}, std::move(short_job));
  ASSERT_TRUE(a.ok() && b.ok());
  const auto* state = r.store->peek<BackgroundTaskStateKey>();
  EXPECT_EQ(state->tasks.at(*a).description, "nightly build of everything");
  EXPECT_EQ(*state->tasks.at(*a).name, "nightly build of everything");
  EXPECT_EQ(state->tasks.at(*b).description, "nightly");
  EXPECT_EQ(*state->tasks.at(*b).name, "nightly");
  r.exec.run_until_idle();
}

TEST(Reentry, AWaiterOfATaskWhoseFallbackDropsTheManagerStillGetsTheSummary) {
  Rig r(false);
  auto [tx, rx] = inbox_channel_with_fallback([&](const json&) { r.m.reset(); });
  r.m->set_owner_inbox(std::move(tx));
  rx.close();
  auto id = r.m->spawn_host("t", "host", std::nullopt, "d", {});
  std::optional<TaskSummary> end;
  bool resumed = false;
  r.exec.spawn([](BackgroundTaskManager* mm, TaskId tid, std::optional<TaskSummary>* out, bool* res) -> Co<void> {
    *out = co_await mm->wait(tid);
    *res = true;
  }(r.m.get(), *id, &end, &resumed));
  r.exec.run_until_idle();
  BackgroundTaskManager* raw = r.m.get();
  ASSERT_TRUE(raw->complete(*id, json(3)).ok());
  EXPECT_TRUE(r.watch.expired());
  r.exec.run_until_idle();
  ASSERT_TRUE(resumed);
  ASSERT_TRUE(end.has_value()) << "the end was committed before the manager went";
  EXPECT_EQ(end->status, TaskStatus::Completed);
  EXPECT_EQ(end->result, json(3));
}

TEST(Reentry, ACommitHookThatRestoresTheSameIdsCountsEachEntryOnce) {
  Rig r;
  auto& m = *r.m;
  const std::string snap = R"({"tasks":{"a":{"task_id":"a","task_type":"x","description":"d",)"
                           R"("status":"completed","created_at_ms":1},"b":{"task_id":"b","task_type":"x",)"
                           R"("description":"d","status":"completed","created_at_ms":1}}})";
  bool inside = false;
  std::optional<std::size_t> inner;
  r.store->set_commit_hook([&](const std::vector<std::string_view>&) -> Result<void> {
    if (!inside && !inner) {
      inside = true;
      inner = m.restore_json("t", snap)->added;
      inside = false;
    }
    return {};
  });
  auto outer = m.restore_json("t", snap);
  ASSERT_TRUE(outer.ok());
  EXPECT_EQ(*inner, 2u);
  EXPECT_EQ(*inner + outer->added, 2u) << "each entry was added once";
  EXPECT_EQ(m.list("t").size(), 2u);
}

}  // namespace
