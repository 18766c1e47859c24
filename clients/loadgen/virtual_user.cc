#include "clients/loadgen/virtual_user.h"

#include <chrono>

#include "absl/strings/str_cat.h"

namespace sympow::loadgen {
namespace {

using Clock = std::chrono::steady_clock;

double MillisecondsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

v1::Input Tokens(const std::vector<int32_t>& ids) {
  v1::Input input;
  input.mutable_token_ids()->mutable_ids()->Assign(ids.begin(), ids.end());
  return input;
}

absl::Status ToStatus(const grpc::Status& status, absl::string_view what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

}  // namespace

UserTimings RunUser(v1::Sympow::Stub& stub, const Workload& workload, int64_t user) {
  UserTimings timings;
  v1::Session session;
  {
    grpc::ClientContext context;
    v1::CreateSessionRequest request;
    *request.mutable_system_prompt() = Tokens(workload.system_prompt());
    timings.error = ToStatus(stub.CreateSession(&context, request, &session), "CreateSession");
    if (!timings.error.ok()) return timings;
  }
  if (workload.HasLongContext(user)) {
    grpc::ClientContext context;
    v1::AppendRequest request;
    request.set_session_id(session.session_id());
    *request.mutable_input() = Tokens(workload.LongContext(user));
    auto reader = stub.Append(&context, request);
    v1::AppendResponse progress;
    while (reader->Read(&progress)) {
    }
    timings.error = ToStatus(reader->Finish(), "Append");
  }
  for (int64_t turn = 0; turn < workload.options().turns && timings.error.ok(); ++turn) {
    grpc::ClientContext context;
    v1::GenerateRequest request;
    request.set_session_id(session.session_id());
    *request.mutable_input() = Tokens(workload.UserMessage(user, turn));
    request.set_max_new_tokens(static_cast<int32_t>(workload.options().reply_tokens));
    request.set_ignore_eos(true);
    const Clock::time_point sent = Clock::now();
    Clock::time_point last = sent;
    bool first = true;
    auto reader = stub.Generate(&context, request);
    v1::GenerateResponse response;
    while (reader->Read(&response)) {
      if (response.has_finished()) {
        timings.context_tokens = response.finished().usage().session_tokens();
        continue;
      }
      if (response.delta().tokens_size() == 0) continue;
      const Clock::time_point now = Clock::now();
      (first ? timings.ttft_ms : timings.itl_ms).push_back(MillisecondsBetween(last, now));
      first = false;
      last = now;
      timings.generated_tokens += response.delta().tokens_size();
    }
    timings.error = ToStatus(reader->Finish(), "Generate");
  }
  grpc::ClientContext context;
  v1::DeleteSessionRequest request;
  request.set_session_id(session.session_id());
  v1::DeleteSessionResponse deleted;
  stub.DeleteSession(&context, request, &deleted);
  return timings;
}

}  // namespace sympow::loadgen
