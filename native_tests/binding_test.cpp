// The binding's scheduling calls (docs/scheduling.md, "The binding"), made natively on the WasmRuntime
// class of wasm/bindings.cpp (compiled here against the Embind stub, as bench/native/binding_path
// does): what JS reads back from the header, the records and the text buffer.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "../wasm/bindings.cpp"

namespace {

// JS's view of one WasmRuntime: the header, the records and the text buffer in (here native) memory.
struct Js {
  WasmRuntime core{/*manual_clock=*/true, 1000, -1, 0, false, 0, false};
  int thread = core.intern("t1");
  int type = core.intern("shell");
  int progress = core.intern("progress");

  const double* header() { return reinterpret_cast<const double*>(core.headerPtr()); }
  std::vector<double> records(int count, int per) {
    const auto* r = reinterpret_cast<const double*>(static_cast<std::uintptr_t>(header()[0]));
    return std::vector<double>(r, r + count * per);
  }
  std::string text() {
    const auto* p = reinterpret_cast<const char*>(static_cast<std::uintptr_t>(header()[1]));
    return std::string(p, static_cast<std::size_t>(header()[2]));
  }
  double spawn(double timeout_ms = -1) { return core.spawn(false, thread, type, 0, 0, -1, 0, 0, timeout_ms); }
  bool queued() { return header()[3] == 1; }
  int complete(double h, const std::string& json_text, double result_handle) {
    std::memcpy(reinterpret_cast<char*>(core.inputPtr(static_cast<double>(json_text.size()))), json_text.data(),
                json_text.size());
    return core.complete(h, static_cast<int>(json_text.size()), false, result_handle);
  }
};

int code(Errc e) { return static_cast<int>(e) + 1; }

TEST(Binding, SpawnReportsQueuedAndTakeStartsListsTasksThatGotTheirSlot) {
  Js js;
  EXPECT_EQ(js.core.setConcurrency(1, ""), 0);
  const double a = js.spawn();
  EXPECT_FALSE(js.queued());
  const double b = js.spawn();
  EXPECT_TRUE(js.queued());
  EXPECT_EQ(a, 0);
  EXPECT_EQ(b, 1);
  js.core.get("bg_1");
  EXPECT_NE(js.text().find("\"queued\":true"), std::string::npos);
  js.core.stats();
  EXPECT_NE(js.text().find("\"queued\":1"), std::string::npos);
  EXPECT_NE(js.text().find("\"listener_errors\":0"), std::string::npos);
  EXPECT_EQ(js.core.takeStarts(), 0);
  EXPECT_EQ(js.complete(a, "1", 7), 0);
  ASSERT_EQ(js.core.takeStarts(), 1);
  EXPECT_EQ(js.records(1, 1), (std::vector<double>{b}));
  EXPECT_EQ(js.core.takeStarts(), 0);
}

TEST(Binding, SetConcurrencyRefusesBadInputAndChangesNothing) {
  Js js;
  const int invalid = code(Errc::InvalidArgument);
  EXPECT_EQ(js.core.setConcurrency(0, ""), invalid);
  EXPECT_EQ(js.core.setConcurrency(1.5, ""), invalid);
  EXPECT_EQ(js.core.setConcurrency(-2, ""), invalid);
  EXPECT_EQ(js.core.setConcurrency(-1, "{\"shell\":"), invalid);
  EXPECT_EQ(js.core.setConcurrency(-1, "[1]"), invalid);
  EXPECT_EQ(js.core.setConcurrency(-1, "{\"shell\":0}"), invalid);
  EXPECT_EQ(js.core.setConcurrency(-1, "{\"shell\":-1}"), invalid);
  EXPECT_EQ(js.core.setConcurrency(-1, "{\"shell\":1.5}"), invalid);
  js.spawn();
  js.spawn();
  EXPECT_FALSE(js.queued()) << "no limit was set";
  EXPECT_EQ(js.core.setConcurrency(-1, "{\"shell\":2}"), 0);
  js.spawn();
  EXPECT_TRUE(js.queued());
}

TEST(Binding, CancelRequestsComeInPairsWithTheirReason) {
  Js js;
  const double a = js.spawn();
  const double b = js.spawn();
  EXPECT_TRUE(js.core.cancel("bg_0"));
  EXPECT_EQ(js.core.cancelAll("t1"), 2);
  ASSERT_EQ(js.core.takeCancelRequests(), 2);
  EXPECT_EQ(js.records(2, 2), (std::vector<double>{a, static_cast<double>(CancelReason::Cancel), b,
                                                   static_cast<double>(CancelReason::CancelAll)}));
}

TEST(Binding, ADeadlineEndsAHostTaskAndShowsInForcedEndsAndCancelRequests) {
  Js js;
  const double h = js.spawn(50);
  js.core.advance(49);
  js.core.runUntilIdle();
  EXPECT_EQ(js.core.takeForcedEnds(), 0);
  js.core.advance(1);
  js.core.runUntilIdle();
  ASSERT_EQ(js.core.takeForcedEnds(), 1);
  EXPECT_EQ(js.records(1, 2), (std::vector<double>{h, 2}));
  ASSERT_EQ(js.core.takeCancelRequests(), 1);
  EXPECT_EQ(js.records(1, 2), (std::vector<double>{h, static_cast<double>(CancelReason::Timeout)}));
  EXPECT_EQ(js.complete(h, "1", 3), code(Errc::TaskTerminated)) << "a later settle records nothing";
  js.core.get("bg_0");
  EXPECT_NE(js.text().find("task timed out after 50 ms"), std::string::npos);
}

TEST(Binding, ShutdownCountsAndForcedEnds) {
  Js js;
  EXPECT_EQ(js.core.setConcurrency(2, ""), 0);
  const double a = js.spawn();
  const double b = js.spawn();
  const double c = js.spawn();
  ASSERT_TRUE(js.queued());
  js.core.setCancelGraceMs(-1);
  EXPECT_EQ(js.core.beginShutdown(), 3);
  ASSERT_EQ(js.core.takeForcedEnds(), 1) << "the queued task ends at once";
  EXPECT_EQ(js.records(1, 2), (std::vector<double>{c, 2}));
  ASSERT_EQ(js.core.takeCancelRequests(), 3) << "the queued task's too, before its forced end";
  EXPECT_EQ(js.records(3, 2), (std::vector<double>{a, 5, b, 5, c, 5}));
  EXPECT_TRUE(std::isnan(js.spawn()));
  EXPECT_EQ(js.core.lastErrorCode(), code(Errc::ShuttingDown));
  EXPECT_EQ(js.core.finishShutdown(), 2);
  ASSERT_EQ(js.core.takeForcedEnds(), 2);
  EXPECT_EQ(js.records(2, 2), (std::vector<double>{a, 2, b, 2}));
}

TEST(Binding, TappedRecordsAreDrainsRecordsAndTakeNothing) {
  Js js;
  js.core.setTap(true);
  const double h = js.spawn();
  EXPECT_EQ(js.core.emit(h, js.progress, 0, 41), 1);
  EXPECT_EQ(js.complete(h, "{\"ok\":true}", 42), 0);
  ASSERT_EQ(js.core.takeTapped(), 2);
  const auto tapped = js.records(2, 4);
  EXPECT_EQ(tapped, (std::vector<double>{0, h, static_cast<double>(js.progress), 41, 1, h, -1, 42}));
  ASSERT_EQ(js.core.drain(-1, 0, -1), 2);
  EXPECT_EQ(js.records(2, 4), tapped) << "the same records; the inbox still had both";
  EXPECT_EQ(js.core.takeTapped(), 0);
  const double f = js.spawn();
  const std::string message = "boom";
  std::memcpy(reinterpret_cast<char*>(js.core.inputPtr(4)), message.data(), 4);
  EXPECT_EQ(js.core.failTask(f, 4, false), 0);
  ASSERT_EQ(js.core.takeTapped(), 1);
  EXPECT_EQ(js.records(1, 4), (std::vector<double>{2, f, -1, 0}));
  EXPECT_EQ(js.text(), "[\"boom\"]");
  js.core.setTap(false);
  js.core.emit(js.spawn(), js.progress, 0, 43);
  EXPECT_EQ(js.core.takeTapped(), 0);
}

TEST(Binding, APlainTimerFiresAsSlept) {
  Js js;
  const double t = js.core.armPlainTimer(20);
  js.core.advance(19);
  js.core.runUntilIdle();
  EXPECT_EQ(js.core.takeFiredTimers(), 0);
  js.core.advance(1);
  js.core.runUntilIdle();
  ASSERT_EQ(js.core.takeFiredTimers(), 1);
  EXPECT_EQ(js.records(1, 2), (std::vector<double>{t, 1}));
}

}  // namespace
