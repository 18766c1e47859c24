// `sympow-cli health`: asks --server's grpc.health.v1.Health/Check, exits 0 when SERVING and 1
// otherwise (a container HEALTHCHECK or a script's readiness wait).
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/synchronization/notification.h"
#include "clients/cli/cli_flags.h"
#include "clients/cli/commands.h"

namespace sympow::cli {

int RunHealth() {
  auto channel =
      grpc::CreateChannel(absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  // An empty HealthCheckRequest (all services) is an empty message.
  grpc::ByteBuffer request, response;
  grpc::Slice empty("");
  request = grpc::ByteBuffer(&empty, 1);
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status result) {
                   status = std::move(result);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) {
    std::fprintf(stderr, "health: %s\n", status.error_message().c_str());
    return 1;
  }
  // HealthCheckResponse{status = SERVING} is field 1, varint 1: the bytes 08 01.
  grpc::Slice bytes;
  const bool serving = response.DumpToSingleSlice(&bytes).ok() && bytes.size() == 2 &&
                       bytes.begin()[0] == 0x08 && bytes.begin()[1] == 0x01;
  std::printf("%s\n", serving ? "SERVING" : "NOT_SERVING");
  return serving ? 0 : 1;
}

}  // namespace sympow::cli
