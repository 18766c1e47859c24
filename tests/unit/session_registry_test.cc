#include "server/session_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sympow::server {
namespace {

TEST(SessionRegistry, PagesSkipEphemeralSessions) {
  SessionRegistry registry(10);
  std::vector<std::string> listed_ids;
  for (int i = 0; i < 3; ++i) registry.Add(i, /*ephemeral=*/false);
  for (int i = 3; i < 6; ++i) registry.Add(i, /*ephemeral=*/true);
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
  const SessionRecord a = registry.Add(7, false);
  ASSERT_TRUE(registry.Acquire(a.id).ok());
  EXPECT_EQ(registry.Acquire(a.id).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(registry.Remove(a.id).status().code(), absl::StatusCode::kFailedPrecondition);
  registry.Release(a.id);
  EXPECT_TRUE(registry.Acquire(a.id).ok());
  registry.Release(a.id);
  registry.Add(8, false);
  EXPECT_EQ(registry.CheckCapacity().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(registry.Remove(a.id)->engine_session, 7u);
  EXPECT_TRUE(registry.CheckCapacity().ok());
  EXPECT_EQ(registry.Get("s-missing").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace sympow::server
