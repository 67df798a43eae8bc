#include "bgtasks/inbox.hpp"

#include <algorithm>

#include "bgtasks/codec.hpp"

namespace bgtasks {

// ---- Event --------------------------------------------------------------------------------------
Event Event::custom(TaskId id, SharedString thread, std::string event_type, json payload) {
  return Event(id, thread, event_type, std::move(payload));
}

Event Event::terminal(TaskId id, SharedString thread, const TaskResult& result) {
  return terminal(std::move(id), std::move(thread), TaskResult(result));
}

Event Event::terminal(TaskId id, SharedString thread, TaskResult&& result) {
  Event e;
  e.task_id = std::move(id);
  e.thread = std::move(thread);
  switch (result.kind) {
    case TaskResult::Kind::Success:
      e.kind = EventKind::Completed;
      e.data = std::move(result.value);
      break;
    case TaskResult::Kind::Failed:
      e.kind = EventKind::Failed;
      e.error = result.error.str();
      break;
    case TaskResult::Kind::Cancelled:
      e.kind = EventKind::Cancelled;
      break;
  }
  return e;
}

Event Event::raw(SharedString thread, json message) {
  Event e;
  e.kind = EventKind::Raw;
  e.thread = std::move(thread);
  e.data = std::move(message);
  return e;
}

json Event::to_json() const {
  switch (kind) {
    case EventKind::Custom:
      return json{{"kind", "custom"}, {"task_id", task_id}, {"event_type", event_type}, {"payload", data}};
    case EventKind::Completed:
      return json{{"kind", "completed"}, {"task_id", task_id}, {"result", data}};
    case EventKind::Failed:
      return json{{"kind", "failed"}, {"task_id", task_id}, {"error", error}};
    case EventKind::Cancelled:
      return json{{"kind", "cancelled"}, {"task_id", task_id}};
    case EventKind::Raw:
      return data;
  }
  return data;
}

// ---- channel ------------------------------------------------------------------------------------
std::pair<InboxSender, InboxReceiver> inbox_channel(InboxOptions options) {
  return inbox_channel_with_fallback(nullptr, options);
}

std::pair<InboxSender, InboxReceiver> inbox_channel_with_fallback(OnInboxClosed on_closed, InboxOptions options) {
  auto s = std::make_shared<detail::InboxState>();
  s->on_closed = std::move(on_closed);
  s->options = options;
  return {InboxSender(s), InboxReceiver(s)};
}

InboxSender::~InboxSender() {
  if (!s_) return;
  // The last sender gone: a receiver blocked in recv() learns the channel ended.
  if (--s_->senders == 0) s_->waiters.wake_all(WakeReason::Signal);
}

InboxSender InboxSender::for_thread(SharedString thread) const {
  InboxSender copy(*this);
  copy.thread_ = std::move(thread);
  return copy;
}

namespace {
// awaken's send rules, for every kind of send: a closed inbox takes nothing; a full bounded one
// refuses (Reject) or evicts its oldest event (DropOldest). Delivered: there is room for one more.
bool full(const detail::InboxState& s) noexcept {
  return s.options.capacity != 0 && s.queue.size() >= s.options.capacity;
}

SendOutcome admit(detail::InboxState& s) noexcept {
  if (!s.receiver_alive) return SendOutcome::Closed;
  if (full(s)) {
    ++s.dropped;
    if (s.options.overflow == OverflowPolicy::Reject) return SendOutcome::Full;
    s.queue.pop_front();
  }
  return SendOutcome::Delivered;
}

// The receiver is gone: the message goes to the fallback (awaken's OnInboxClosed).
void hand_to_fallback(const detail::InboxState& s, const Event& ev) {
  if (!s.on_closed) return;
#if defined(__cpp_exceptions)
  // A throwing fallback must not take the sender (a task's completion) down with it.
  try {
    s.on_closed(ev.to_json());
  } catch (...) {
  }
#else
  s.on_closed(ev.to_json());
#endif
}
}  // namespace

SendOutcome InboxSender::send_event(Event ev) const {
  detail::InboxState& s = *s_;
  if (ev.thread.empty()) ev.thread = thread_;
  const SendOutcome outcome = admit(s);
  if (outcome == SendOutcome::Closed) {
    // The fallback is user code: it may destroy this sender (and the task or manager holding it),
    // so the channel is held until it returns, and nothing of the sender is read afterwards.
    const std::shared_ptr<detail::InboxState> keep = s_;
    hand_to_fallback(*keep, ev);
    return outcome;
  }
  if (outcome != SendOutcome::Delivered) return outcome;
  s.queue.push_back(std::move(ev));
  s.waiters.wake_one(WakeReason::Signal);
  return SendOutcome::Delivered;
}

SendOutcome InboxSender::send_custom(const TaskId& id, const SharedString& thread, std::string_view event_type,
                                     json&& payload) const {
  detail::InboxState& s = *s_;
  const SharedString& owner = thread.empty() ? thread_ : thread;
  // Closed or full: send_event's way (the event is built before anything is evicted or handed to
  // the fallback). Otherwise there is room: build it in its slot.
  if (!s.receiver_alive || full(s)) return send_event(Event(id, owner, event_type, std::move(payload)));
  s.queue.emplace_back(id, owner, event_type, std::move(payload));
  s.waiters.wake_one(WakeReason::Signal);
  return SendOutcome::Delivered;
}

bool InboxSender::try_send(json message) const {
  detail::InboxState& s = *s_;
  if (admit(s) != SendOutcome::Delivered) return false;
  s.queue.push_back(Event::raw(thread_, std::move(message)));
  s.waiters.wake_one(WakeReason::Signal);
  return true;
}

// ---- receiver -----------------------------------------------------------------------------------
InboxReceiver& InboxReceiver::operator=(InboxReceiver&& o) noexcept {
  if (this != &o) {
    close();
    s_ = std::move(o.s_);
  }
  return *this;
}

void InboxReceiver::close() noexcept {
  if (!s_) return;
  s_->receiver_alive = false;
  s_->queue.clear();
  s_.reset();
}

std::optional<Event> InboxReceiver::try_recv_event() {
  if (!s_ || s_->queue.empty()) return std::nullopt;
  Event e = std::move(s_->queue.front());
  s_->queue.pop_front();
  return e;
}

std::optional<json> InboxReceiver::try_recv() {
  auto e = try_recv_event();
  if (!e) return std::nullopt;
  return e->to_json();
}

std::vector<Event> InboxReceiver::drain_events() {
  std::vector<Event> out;
  if (!s_) return out;
  out.reserve(s_->queue.size());
  for (auto& e : s_->queue) out.push_back(std::move(e));
  s_->queue.clear();
  return out;
}

std::vector<Event> InboxReceiver::drain_events(std::string_view thread, std::size_t max) {
  std::vector<Event> out;
  if (!s_) return out;
  // In place: the events that stay slide up over the ones taken, in order (no second queue).
  auto& q = s_->queue;
  std::size_t kept = 0;
  for (std::size_t i = 0; i < q.size(); ++i) {
    Event& e = q[i];
    if (out.size() < max && e.thread == thread)
      out.push_back(std::move(e));
    else if (kept++ != i)
      q[kept - 1] = std::move(e);
  }
  q.erase_back(q.size() - kept);
  return out;
}

std::vector<json> InboxReceiver::drain() {
  std::vector<json> out;
  for (auto& e : drain_events()) out.push_back(e.to_json());
  return out;
}

namespace {

// Event::to_json's shapes written straight into `out` (keys sorted, as the DOM writes them).
void write_event(std::string& out, const Event& e) {
  switch (e.kind) {
    case EventKind::Custom:
      out += "{\"event_type\":";
      write_json_string(out, e.event_type);
      out += ",\"kind\":\"custom\",\"payload\":";
      write_json(out, e.data);
      break;
    case EventKind::Completed:
      out += "{\"kind\":\"completed\",\"result\":";
      write_json(out, e.data);
      break;
    case EventKind::Failed:
      out += "{\"error\":";
      write_json_string(out, e.error);
      out += ",\"kind\":\"failed\"";
      break;
    case EventKind::Cancelled:
      out += "{\"kind\":\"cancelled\"";
      break;
    case EventKind::Raw:
      write_json(out, e.data);
      return;
  }
  out += ",\"task_id\":";
  write_json_string(out, e.task_id);
  out += '}';
}

}  // namespace

std::string InboxReceiver::drain_json(std::optional<std::string_view> thread, std::size_t max) {
  std::string out = "[";
  char sep = 0;
  auto write = [&](const Event& e) {
    if (sep) out += sep;
    sep = ',';
    write_event(out, e);
  };
  if (thread) {
    for (const Event& e : drain_events(*thread, max)) write(e);
  } else {
    consume(write, max);
  }
  out += ']';
  return out;
}

bool InboxReceiver::RecvAwaiter::await_ready() const noexcept {
  return !s_->queue.empty() || s_->senders == 0 || (cancel_ && cancel_->cancelled);
}

void InboxReceiver::RecvAwaiter::await_suspend(coro::coroutine_handle<> h) noexcept {
  waiter_.arm(suspend_current(h));
  s_->waiters.push(node_, waiter_);
  if (cancel_) cancel_->waiters.push(cancel_node_, waiter_);
}

std::optional<json> InboxReceiver::RecvAwaiter::await_resume() {
  node_.unlink();
  cancel_node_.unlink();
  if (cancel_ && cancel_->cancelled) return std::nullopt;
  if (s_->queue.empty()) return std::nullopt;
  Event e = std::move(s_->queue.front());
  s_->queue.pop_front();
  return e.to_json();
}

std::string inbox_event_message(const json& event) {
  std::string kind = "event", task_id = "unknown";
  if (event.is_object()) {
    if (auto k = event.find("kind"); k != event.end() && k->is_string()) kind = k->get<std::string>();
    if (auto t = event.find("task_id"); t != event.end() && t->is_string()) task_id = t->get<std::string>();
  }
  return "<background-task-event kind=\"" + kind + "\" task_id=\"" + task_id + "\">\n" + dump(event) +
         "\n</background-task-event>";
}

}  // namespace bgtasks
