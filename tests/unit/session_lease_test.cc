// Session leases in a shared directory: one owner at a time, takeover after expiry.
#include "server/session_lease.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/unit/model_files.h"

namespace sympow::server {
namespace {

using ::testing::HasSubstr;

TEST(SessionLeases, OneOwnerUntilItsLeaseExpires) {
  testing::TempDir dir;
  SessionLeases a(dir.path(), "a", absl::Milliseconds(200));
  SessionLeases b(dir.path(), "b", absl::Milliseconds(200));
  ASSERT_TRUE(a.Acquire("s").ok());
  ASSERT_TRUE(a.Acquire("s").ok());  // renewing
  const absl::Status refused = b.Acquire("s");
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(refused.message(), HasSubstr("replica 'a'"));
  EXPECT_THAT(refused.message(), HasSubstr("retry in"));
  absl::SleepFor(absl::Milliseconds(300));  // a stopped renewing
  EXPECT_TRUE(b.Acquire("s").ok());
  EXPECT_EQ(a.Acquire("s").code(), absl::StatusCode::kUnavailable);
  b.Release("s");
  EXPECT_TRUE(a.Acquire("s").ok());  // released: free at once
}

TEST(SessionLeases, ReplicasRacingForOneSessionHaveExactlyOneWinner) {
  testing::TempDir dir;
  constexpr int kReplicas = 8;
  std::atomic<int> winners = 0, refused = 0;
  std::vector<std::thread> threads;
  for (int i = 0; i < kReplicas; ++i) {
    threads.emplace_back([&, i] {
      SessionLeases leases(dir.path(), absl::StrCat("r", i), absl::Seconds(30));
      const absl::Status status = leases.Acquire("contested");
      ++(status.ok() ? winners : refused);
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_EQ(refused.load(), kReplicas - 1);
}

}  // namespace
}  // namespace sympow::server
