// cpg_probe: a CpgBus client for the cluster integration tests (tests/integration/cpg_bus.sh).
//
//   cpg_probe [--group NAME] [--send N] [--seconds S] [--min-members K] [--pad BYTES]
//
// Joins the CPG group NAME (default "vguard-test"), prints one line per bus event on stdout, multicasts N
// messages "hello-<node>-<i>" once a view with at least K members (default 1) arrived, and exits 0 after S
// seconds (default 10) or on SIGTERM/SIGINT, stopping the io_context and destroying the bus cleanly.
// --pad appends " " and BYTES dots to every message (to reach corosync's flow control); MSG lines show the
// payload up to the first space.
// Output lines:
//   LOCAL node=1
//   VIEW members=1,2,3 joined=3 left=2(nodedown)
//   QUORUM 1
//   MSG from=2 len=9 data=hello-2-0
//   LOST <error text>
//   SENDERR <error text>
//   EXIT             (io_context stopped; the bus is destroyed next)
// Logs (debug and up) go to stderr.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cpg_bus.h"
#include "log.h"

namespace {

using vguard::fenced::BusListener;
using vguard::fenced::CpgBus;
using vguard::fenced::LeaveReason;
using vguard::fenced::NodeId;
using vguard::fenced::View;


std::string ids(const std::vector<NodeId>& v) {
  std::string s;
  for (NodeId n : v) s += (s.empty() ? "" : ",") + std::to_string(n);
  return s;
}

void line(const std::string& s) {
  std::fputs(s.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

class Probe final : public BusListener {
 public:
  Probe(CpgBus& bus, int to_send, std::size_t min_members, std::size_t pad)
      : bus_(bus), to_send_(to_send), min_members_(min_members), pad_(pad) {}

  void on_message(NodeId from, std::string bytes) override {
    line("MSG from=" + std::to_string(from) + " len=" + std::to_string(bytes.size()) +
         " data=" + bytes.substr(0, bytes.find(' ')));
  }
  void on_view(const View& v) override {
    std::string left;
    for (const auto& [n, r] : v.left) left += (left.empty() ? "" : ",") + std::to_string(n) + "(" + leave_reason_name(r) + ")";
    line("VIEW members=" + ids(v.members) + " joined=" + ids(v.joined) + " left=" + left);
    if (!sent_ && v.members.size() >= min_members_) {
      sent_ = true;
      for (int i = 0; i < to_send_; ++i) {
        std::string m = "hello-" + std::to_string(bus_.local_node()) + "-" + std::to_string(i);
        if (pad_ > 0) m += " " + std::string(pad_, '.');
        auto r = bus_.send(std::move(m));
        if (!r) line("SENDERR " + r.error().message());
      }
    }
  }
  void on_quorum(bool quorate) override { line(std::string("QUORUM ") + (quorate ? "1" : "0")); }
  void on_lost(const vguard::Error& why) override { line("LOST " + why.message()); }

 private:
  CpgBus& bus_;
  int to_send_;
  std::size_t min_members_;
  std::size_t pad_;
  bool sent_ = false;
};

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: cpg_probe [--group NAME] [--send N] [--seconds S] [--min-members K] [--pad BYTES]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string group = "vguard-test";
  int to_send = 0;
  int seconds = 10;
  int min_members = 1;
  int pad = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) usage();
    const char* v = argv[++i];
    if (a == "--group") group = v;
    else if (a == "--send") to_send = std::atoi(v);
    else if (a == "--seconds") seconds = std::atoi(v);
    else if (a == "--min-members") min_members = std::atoi(v);
    else if (a == "--pad") pad = std::atoi(v);
    else usage();
  }
  if (to_send < 0 || seconds <= 0 || min_members < 1 || pad < 0) usage();

  vguard::StderrLogger log(vguard::Level::debug);
  boost::asio::io_context io;
  int rc = 0;
  {
    CpgBus bus(io, group, log);
    Probe probe(bus, to_send, static_cast<std::size_t>(min_members), static_cast<std::size_t>(pad));
    bus.set_listener(&probe);
    if (auto r = bus.start(); !r) {
      std::fprintf(stderr, "cpg_probe: %s\n", r.error().message().c_str());
      return 1;
    }
    if (bus.connected()) line("LOCAL node=" + std::to_string(bus.local_node()));

    boost::asio::steady_timer deadline(io, std::chrono::seconds(seconds));
    deadline.async_wait([&io](const boost::system::error_code& ec) {
      if (!ec) io.stop();
    });
    boost::asio::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&io, &rc](const boost::system::error_code& ec, int) {
      if (!ec) io.stop();
      rc = 0;
    });
    io.run();
    line("EXIT");
  }  // bus destroyed here: cpg_leave + finalize, handlers left in io become no-ops
  return rc;
}
