// Inboxes: awaken's unbounded mpsc channel of JSON messages, here a single-threaded queue of typed
// events in contiguous storage. JSON is produced only when a receiver reads (drain/try_recv).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bgtasks/cancellation.hpp"
#include "bgtasks/executor.hpp"
#include "bgtasks/ring_queue.hpp"
#include "bgtasks/shared_string.hpp"
#include "bgtasks/types.hpp"

namespace bgtasks {
namespace detail {
struct TaskState;
}

enum class EventKind : std::uint8_t { Custom, Completed, Failed, Cancelled, Raw };

// The one event type: owner-inbox events ({kind, task_id, ...}), sub-agent agent_message events,
// and raw JSON sent through TaskContext::inbox.
struct Event {
  EventKind kind = EventKind::Raw;
  TaskId task_id;
  SharedString thread;     // owner thread of the task; routing only, never serialized
  std::string event_type;  // Custom
  json data;               // Custom payload, Completed result, or the Raw message itself
  std::string error;       // Failed

  Event() = default;
  // A custom event; InboxSender::send_custom builds it in the inbox's own slot.
  Event(const TaskId& id, const SharedString& thread, std::string_view event_type, json&& payload)
      : kind(EventKind::Custom), task_id(id), thread(thread), event_type(event_type), data(std::move(payload)) {}

  static Event custom(TaskId id, SharedString thread, std::string event_type, json payload);
  static Event terminal(TaskId id, SharedString thread, const TaskResult& result);
  static Event terminal(TaskId id, SharedString thread, TaskResult&& result);  // moves the value
  static Event raw(SharedString thread, json message);
  // awaken's JSON: {"kind":"custom","task_id":…,"event_type":…,"payload":…} etc., keys sorted.
  json to_json() const;
};

enum class OverflowPolicy : std::uint8_t { Reject, DropOldest };
struct InboxOptions {
  std::size_t capacity = 0;  // 0: unbounded, as awaken
  OverflowPolicy overflow = OverflowPolicy::Reject;
};

enum class SendOutcome : std::uint8_t { Delivered, Closed, Full };

// Called once per failed send after the receiver is gone (awaken's OnInboxClosed::closed).
using OnInboxClosed = std::function<void(const json& message)>;

namespace detail {
struct InboxState {
  RingQueue<Event> queue;
  bool receiver_alive = true;
  std::size_t senders = 0;
  OnInboxClosed on_closed;
  InboxOptions options;
  std::uint64_t dropped = 0;  // DropOldest evictions and Reject refusals
  WaitList waiters;
};
}  // namespace detail

class InboxSender {
 public:
  InboxSender(const InboxSender& o) noexcept : s_(o.s_), thread_(o.thread_) { ++s_->senders; }
  InboxSender(InboxSender&& o) noexcept : s_(std::move(o.s_)), thread_(std::move(o.thread_)) {}
  InboxSender& operator=(InboxSender o) noexcept {
    std::swap(s_, o.s_);
    std::swap(thread_, o.thread_);
    return *this;
  }
  ~InboxSender();

  // awaken's send: false when the receiver is gone (then on_closed fires) or a bounded inbox
  // refused the message.
  bool send(json message) const {
    return send_event(Event::raw(thread_, std::move(message))) == SendOutcome::Delivered;
  }
  SendOutcome send_event(Event ev) const;
  // send_event(Event::custom(...)) without the moves: the event is built in place in the queue
  // (every ctx.emit comes here). An empty thread means the sender's, as in send_event.
  SendOutcome send_custom(const TaskId& id, const SharedString& thread, std::string_view event_type,
                          json&& payload) const;
  // As send, without the closed callback.
  bool try_send(json message) const;
  std::size_t len() const noexcept { return s_->queue.size(); }
  bool is_empty() const noexcept { return s_->queue.empty(); }
  bool is_closed() const noexcept { return !s_->receiver_alive; }
  std::uint64_t dropped() const noexcept { return s_->dropped; }
  // A copy whose raw sends are attributed to `thread` (for drain(thread)).
  InboxSender for_thread(SharedString thread) const;
  bool same_channel(const InboxSender& o) const noexcept { return s_ == o.s_; }

 private:
  friend std::pair<InboxSender, class InboxReceiver> inbox_channel_with_fallback(OnInboxClosed, InboxOptions);
  explicit InboxSender(std::shared_ptr<detail::InboxState> s) noexcept : s_(std::move(s)) { ++s_->senders; }
  // No channel: only a task's "no owner inbox" slot (8 bytes less per task than an optional).
  friend struct detail::TaskState;
  InboxSender() noexcept = default;
  bool has_channel() const noexcept { return s_ != nullptr; }
  std::shared_ptr<detail::InboxState> s_;
  SharedString thread_;
};

class InboxReceiver {
 public:
  InboxReceiver(InboxReceiver&& o) noexcept : s_(std::move(o.s_)) {}
  InboxReceiver& operator=(InboxReceiver&& o) noexcept;
  InboxReceiver(const InboxReceiver&) = delete;
  ~InboxReceiver() { close(); }

  std::optional<json> try_recv();
  std::vector<json> drain();
  std::optional<Event> try_recv_event();
  std::vector<Event> drain_events();
  // Only the events of `thread` (at most `max`), leaving the others queued in order.
  std::vector<Event> drain_events(std::string_view thread, std::size_t max = SIZE_MAX);
  // One JSON array text: all events (at most `max`), or one thread's.
  std::string drain_json(std::optional<std::string_view> thread = std::nullopt, std::size_t max = SIZE_MAX);
  // Takes the oldest events (at most `max`) the cheapest way: f(const Event&) sees each in place,
  // in order, then they leave the queue together (nothing moved or copied). f must not touch this
  // inbox; if f throws, nothing has left. Returns how many f saw.
  template <class F>
  std::size_t consume(F&& f, std::size_t max = SIZE_MAX) {
    if (!s_) return 0;
    auto& q = s_->queue;
    const std::size_t n = std::min(max, q.size());
    for (std::size_t i = 0; i < n; ++i) f(static_cast<const Event&>(q[i]));
    q.erase_front(n);
    return n;
  }
  std::size_t len() const noexcept { return s_ ? s_->queue.size() : 0; }
  bool is_empty() const noexcept { return len() == 0; }
  std::uint64_t dropped() const noexcept { return s_ ? s_->dropped : 0; }
  // Drops the receiving end: later sends fail and fire the fallback.
  void close() noexcept;

  // co_await rx.recv(): the next message; nullopt once every sender is gone and the queue is empty.
  class RecvAwaiter : public NativeAwaiter {
   public:
    RecvAwaiter(detail::InboxState& s, detail::CancelState* cancel) noexcept : s_(&s), cancel_(cancel) {}
    RecvAwaiter(const RecvAwaiter&) = delete;
    bool await_ready() const noexcept;
    void await_suspend(coro::coroutine_handle<> h) noexcept;
    std::optional<json> await_resume();

   private:
    detail::InboxState* s_;
    detail::CancelState* cancel_;
    Waiter waiter_;
    WaitNode node_;
    WaitNode cancel_node_;
  };
  RecvAwaiter recv() noexcept { return RecvAwaiter(*s_, nullptr); }
  // As recv, but nullopt as soon as `token` is cancelled (awaken's recv_or_cancel).
  RecvAwaiter recv_or_cancel(const CancellationToken& token) noexcept { return RecvAwaiter(*s_, &token.state()); }

 private:
  friend std::pair<InboxSender, InboxReceiver> inbox_channel_with_fallback(OnInboxClosed, InboxOptions);
  explicit InboxReceiver(std::shared_ptr<detail::InboxState> s) noexcept : s_(std::move(s)) {}
  std::shared_ptr<detail::InboxState> s_;
};

std::pair<InboxSender, InboxReceiver> inbox_channel(InboxOptions options = {});
std::pair<InboxSender, InboxReceiver> inbox_channel_with_fallback(OnInboxClosed on_closed, InboxOptions options = {});

// awaken's inbox_event_message: the internal user message an agent loop shows the model.
std::string inbox_event_message(const json& event);

}  // namespace bgtasks
