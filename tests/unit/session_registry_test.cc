#include "server/session_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sympow::server {
namespace {

TEST(SessionRegistry, PagesSkipEphemeralSessions) {
  SessionRegistry registry(10);
  std::vector<std::string> listed_ids;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(registry.Add(i, /*ephemeral=*/false).ok());
  for (int i = 3; i < 6; ++i) ASSERT_TRUE(registry.Add(i, /*ephemeral=*/true).ok());
  bool more = false;
  std::string after;
  int pages = 0;
  do {
    std::vector<SessionRecord> page = registry.List(after, 2, &more);
    for (const SessionRecord& record : page) {
      EXPECT_FALSE(record.ephemeral);
      listed_ids.push_back(record.id);
    }
    if (!page.empty()) after = page.back().id;
    ++pages;
  } while (more);
  EXPECT_EQ(listed_ids.size(), 3u);
  EXPECT_EQ(pages, 2);
  EXPECT_EQ(registry.size(), 6);
}

TEST(SessionRegistry, BusySessionsRefuseASecondCallAndDeletion) {
  SessionRegistry registry(2);
  const SessionRecord a = registry.Add(7, false).value();
  ASSERT_TRUE(registry.Acquire(a.id).ok());
  EXPECT_EQ(registry.Acquire(a.id).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(registry.Remove(a.id).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(registry.EndCall(a.id).has_value());
  EXPECT_TRUE(registry.Acquire(a.id).ok());
  EXPECT_FALSE(registry.EndCall(a.id).has_value());
  registry.Add(8, false).value();
  EXPECT_EQ(registry.CheckCapacity().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(registry.Remove(a.id)->engine_session, 7u);
  EXPECT_TRUE(registry.CheckCapacity().ok());
  EXPECT_EQ(registry.Get("s-missing").status().code(), absl::StatusCode::kNotFound);
}

TEST(SessionRegistry, DeletingABusySessionCancelsItsCallAndRemovesItWhenTheCallEnds) {
  SessionRegistry registry(4);
  const SessionRecord idle = registry.Add(1, false).value();
  const SessionRecord busy = registry.Add(2, false).value();
  ASSERT_TRUE(registry.Acquire(busy.id).ok());
  auto request = std::make_shared<Request>();
  registry.SetRunning(busy.id, request);

  EXPECT_EQ(registry.Delete(idle.id).value()->engine_session, 1u);  // idle: gone at once
  EXPECT_FALSE(registry.Delete(busy.id).value().has_value());       // busy: marked
  EXPECT_TRUE(request->cancelled.load());
  EXPECT_TRUE(registry.Deleting(busy.id));
  EXPECT_EQ(registry.Delete(busy.id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry.Acquire(busy.id).status().code(), absl::StatusCode::kFailedPrecondition);
  const std::optional<SessionRecord> gone = registry.EndCall(busy.id);
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(gone->engine_session, 2u);
  EXPECT_EQ(registry.size(), 0);
}

TEST(SessionRegistry, AClientChosenIdIsUsedOnceOnly) {
  SessionRegistry registry(4);
  EXPECT_EQ(registry.Add(1, false, "user-42.chat").value().id, "user-42.chat");
  absl::StatusOr<SessionRecord> again = registry.Add(2, false, "user-42.chat");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.size(), 1);
}

}  // namespace
}  // namespace sympow::server
