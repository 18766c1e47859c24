// sympow-cli commands that talk to a sympow-server (--server): generate, chat, append, sessions,
// tokenize.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "clients/cli/cli_flags.h"
#include "clients/cli/commands.h"
#include "grpcpp/grpcpp.h"
#include "sympow/v1/sympow.grpc.pb.h"

namespace sympow::cli {
namespace {

std::unique_ptr<v1::Sympow::Stub> Connect() {
  return v1::Sympow::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials()));
}

int ReportRpcError(const grpc::Status& status) {
  std::fprintf(stderr, "error: %s (%s)\n", status.error_message().c_str(),
               absl::StrCat("gRPC code ", static_cast<int>(status.error_code())).c_str());
  return 1;
}

absl::StatusOr<v1::GenerateRequest> RequestFromFlags(const std::string& prompt) {
  absl::StatusOr<SamplingParams> sampling = SamplingFromFlags();
  if (!sampling.ok()) return sampling.status();
  v1::GenerateRequest request;
  if (!absl::GetFlag(FLAGS_prompt_ids).empty()) {
    absl::StatusOr<std::vector<int32_t>> ids =
        ParseIds(absl::GetFlag(FLAGS_prompt_ids), "prompt_ids");
    if (!ids.ok()) return ids.status();
    for (int32_t id : *ids) request.mutable_input()->mutable_token_ids()->add_ids(id);
  } else {
    request.mutable_input()->set_text(prompt);
  }
  request.set_session_id(absl::GetFlag(FLAGS_session));
  request.set_max_new_tokens(static_cast<int32_t>(absl::GetFlag(FLAGS_max_new_tokens)));
  request.set_ignore_eos(absl::GetFlag(FLAGS_ignore_eos));
  v1::SamplingParams* s = request.mutable_sampling();
  s->set_temperature(sampling->temperature);
  s->set_top_k(sampling->top_k);
  s->set_top_p(sampling->top_p);
  s->set_min_p(sampling->min_p);
  s->set_repetition_penalty(sampling->repetition_penalty);
  s->set_seed(sampling->seed);
  for (int32_t id : sampling->stop_tokens) request.add_stop_token_ids(id);
  return request;
}

// Streams one Generate call to stdout; reports tokens/s on stderr.
int StreamGeneration(v1::Sympow::Stub& stub, const v1::GenerateRequest& request,
                     std::string* session_id) {
  grpc::ClientContext context;
  // A router (deploy/nginx) sends every call of a session to the replica that holds it.
  if (!request.session_id().empty()) context.AddMetadata("x-sympow-session", request.session_id());
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
      stub.Generate(&context, request);
  v1::GenerateResponse response;
  v1::Finished finished;
  while (reader->Read(&response)) {
    if (response.has_delta()) {
      std::fwrite(response.delta().text().data(), 1, response.delta().text().size(), stdout);
      std::fflush(stdout);
    } else {
      finished = response.finished();
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return ReportRpcError(status);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto& usage = finished.usage();
  std::fprintf(
      stderr,
      "\n[%d tokens, %.1f tokens/s, first token after %.3f s, %s; session %s holds %lld tokens]\n",
      usage.generated_tokens(), usage.generated_tokens() / std::max(seconds, 1e-9),
      usage.time_to_first_token_s(), v1::FinishReason_Name(finished.reason()).c_str(),
      finished.session_id().c_str(), static_cast<long long>(usage.session_tokens()));
  if (session_id != nullptr) *session_id = finished.session_id();
  return 0;
}

void PrintSession(const v1::Session& s) {
  std::printf("%s  tokens=%lld  state_bytes=%lld  location=%s  busy=%s  created=%s  last_used=%s\n",
              s.session_id().c_str(), static_cast<long long>(s.token_count()),
              static_cast<long long>(s.state_bytes()), v1::StateLocation_Name(s.location()).c_str(),
              s.busy() ? "yes" : "no",
              absl::FormatTime(absl::FromUnixSeconds(s.created().seconds())).c_str(),
              absl::FormatTime(absl::FromUnixSeconds(s.last_used().seconds())).c_str());
}

}  // namespace

int RunRemoteGenerate() {
  if (absl::GetFlag(FLAGS_prompt).empty() == absl::GetFlag(FLAGS_prompt_ids).empty()) {
    return ReportError(absl::InvalidArgumentError("give exactly one of --prompt and --prompt_ids"));
  }
  absl::StatusOr<v1::GenerateRequest> request = RequestFromFlags(absl::GetFlag(FLAGS_prompt));
  if (!request.ok()) return ReportError(request.status());
  std::printf("%s", absl::GetFlag(FLAGS_prompt).c_str());
  const int code = StreamGeneration(*Connect(), *request, nullptr);
  std::printf("\n");
  return code;
}

int RunChat() {
  auto stub = Connect();
  std::string session = absl::GetFlag(FLAGS_session);
  if (session.empty()) {
    grpc::ClientContext context;
    v1::Session created;
    grpc::Status status = stub->CreateSession(&context, v1::CreateSessionRequest(), &created);
    if (!status.ok()) return ReportRpcError(status);
    session = created.session_id();
  }
  std::fprintf(stderr,
               "session %s — type a message; /session shows the id, /quit or end of input leaves\n",
               session.c_str());
  std::string line;
  while (std::fprintf(stderr, "> "), std::getline(std::cin, line)) {
    if (line == "/quit") break;
    if (line == "/session") {
      std::fprintf(stderr, "%s\n", session.c_str());
      continue;
    }
    if (line.empty()) continue;
    absl::StatusOr<v1::GenerateRequest> request = RequestFromFlags(line + "\n");
    if (!request.ok()) return ReportError(request.status());
    request->set_session_id(session);
    if (StreamGeneration(*stub, *request, nullptr) != 0)
      continue;  // the error is printed; the chat goes on
  }
  std::fprintf(stderr, "resume with: sympow-cli chat --session %s\n", session.c_str());
  return 0;
}

int RunSessions(const std::vector<std::string>& args) {
  auto stub = Connect();
  const std::string action = args.empty() ? "list" : args[0];
  const std::string id = args.size() > 1 ? args[1] : absl::GetFlag(FLAGS_session);
  grpc::ClientContext context;
  if (!id.empty()) context.AddMetadata("x-sympow-session", id);
  v1::Session session;
  grpc::Status status;
  if (action == "list") {
    std::string page_token;
    do {
      grpc::ClientContext page_context;
      v1::ListSessionsRequest request;
      request.set_page_token(page_token);
      v1::ListSessionsResponse page;
      status = stub->ListSessions(&page_context, request, &page);
      if (!status.ok()) return ReportRpcError(status);
      for (const v1::Session& s : page.sessions()) PrintSession(s);
      page_token = page.next_page_token();
    } while (!page_token.empty());
    return 0;
  }
  if (action == "create") {
    v1::CreateSessionRequest request;
    request.set_session_id(id);  // `sessions create [ID]`: an id of the user's choosing
    if (!absl::GetFlag(FLAGS_prompt).empty())
      request.mutable_system_prompt()->set_text(absl::GetFlag(FLAGS_prompt));
    status = stub->CreateSession(&context, request, &session);
  } else if (id.empty()) {
    return ReportError(
        absl::InvalidArgumentError(absl::StrCat("sessions ", action, " needs a session id")));
  } else if (action == "show") {
    v1::GetSessionRequest request;
    request.set_session_id(id);
    status = stub->GetSession(&context, request, &session);
  } else if (action == "fork") {
    v1::ForkSessionRequest request;
    request.set_session_id(id);
    status = stub->ForkSession(&context, request, &session);
  } else if (action == "delete") {
    v1::DeleteSessionRequest request;
    request.set_session_id(id);
    v1::DeleteSessionResponse response;
    status = stub->DeleteSession(&context, request, &response);
    if (status.ok()) std::printf("deleted %s\n", id.c_str());
    return status.ok() ? 0 : ReportRpcError(status);
  } else {
    return ReportError(absl::InvalidArgumentError(
        absl::StrCat("unknown sessions action '", action, "' (create, list, show, fork, delete)")));
  }
  if (!status.ok()) return ReportRpcError(status);
  PrintSession(session);
  return 0;
}

int RunAppend() {
  const std::string session = absl::GetFlag(FLAGS_session), file = absl::GetFlag(FLAGS_file);
  if (session.empty()) return ReportError(absl::InvalidArgumentError("append needs --session"));
  std::string text = absl::GetFlag(FLAGS_prompt);
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in)
      return ReportError(absl::NotFoundError(absl::StrCat("--file ", file, " cannot be read")));
    std::ostringstream contents;
    contents << in.rdbuf();
    text = contents.str();
  }
  v1::AppendRequest request;
  request.set_session_id(session);
  request.mutable_input()->set_text(text);
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::AppendResponse>> stream =
      Connect()->Append(&context, request);
  v1::AppendResponse progress;
  int64_t session_tokens = 0;
  while (stream->Read(&progress)) {
    std::fprintf(stderr, "\rappended %lld / %lld tokens",
                 static_cast<long long>(progress.appended_tokens()),
                 static_cast<long long>(progress.total_tokens()));
    session_tokens = progress.session_tokens();
  }
  std::fprintf(stderr, "\n");
  grpc::Status status = stream->Finish();
  if (!status.ok()) return ReportRpcError(status);
  std::printf("%lld\n", static_cast<long long>(session_tokens));  // the session's length now
  return 0;
}

int RunTokenize(const std::vector<std::string>& args) {
  const std::string text = args.empty() ? absl::GetFlag(FLAGS_prompt) : absl::StrJoin(args, " ");
  grpc::ClientContext context;
  v1::TokenizeRequest request;
  request.set_text(text);
  v1::TokenizeResponse response;
  grpc::Status status = Connect()->Tokenize(&context, request, &response);
  if (!status.ok()) return ReportRpcError(status);
  for (int i = 0; i < response.token_ids_size(); ++i) {
    std::printf("%d\t%s\n", response.token_ids(i), response.pieces(i).c_str());
  }
  return 0;
}

}  // namespace sympow::cli
