// vguardd: the vguard host daemon.
#include <boost/program_options.hpp>

#include <unistd.h>

#include <chrono>
#include <iostream>

#include "config.h"
#include "daemon.h"
#include "cpg_bus.h"
#ifdef VG_WITH_PACEMAKER
#include "pacemaker_history.h"
#endif
#include "libvirt_hypervisor.h"
#include "log.h"

namespace po = boost::program_options;
using namespace vguard;

namespace {
Level parse_level(const std::string& s) {
  for (Level l : {Level::critical, Level::error, Level::warning, Level::notice, Level::info, Level::debug, Level::trace})
    if (level_name(l) == s) return l;
  return Level::info;
}
}  // namespace

int main(int argc, char** argv) {
  std::string config_path = "/etc/vguard/vguard.conf";
  po::options_description desc("Usage: vguardd [--config FILE] [--check]\nOptions");
  desc.add_options()                                                                            //
      ("config,c", po::value(&config_path), "configuration file (default /etc/vguard/vguard.conf)")  //
      ("check", "validate the configuration and key files, then exit")                          //
      ("foreground,f", "run in the foreground (always the case; accepted for compatibility)")   //
      ("version,V", "print the version")                                                        //
      ("help,h", "print this help");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "vguardd: " << e.what() << "\n" << desc;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "vguardd 0.1.0\n";
    return 0;
  }
  auto cfg = fenced::load_config(config_path);
  if (!cfg) {
    std::cerr << "vguardd: " << cfg.error().context << "\n";
    return 1;
  }
  if (vm.count("check")) {
    std::cout << "vguardd: configuration " << config_path << " is valid (" << cfg->keys.size() << " keys, "
              << cfg->listen.size() << " network listeners)\n";
    return 0;
  }
  StderrLogger log(parse_level(cfg->log_level));
  fenced::LibvirtHypervisor hv(cfg->libvirt_uri);
  fenced::DaemonOptions dopts{*cfg, true};
  if (cfg->cluster) {
    std::string hostname = cfg->hostname;
    if (hostname.empty()) {
      char buf[256] = {};
      ::gethostname(buf, sizeof buf - 1);
      hostname = buf;
    }
    dopts.hostname = hostname;
    dopts.incarnation = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                       std::chrono::system_clock::now().time_since_epoch())
                                                       .count());
  }
#ifdef VG_WITH_PACEMAKER
  fenced::PacemakerHistory history;
  if (cfg->pacemaker_history) dopts.history = &history;
#else
  if (cfg->pacemaker_history) {
    std::cerr << "vguardd: " << config_path << ": pacemaker_history = yes, but vguardd was built without "
              << "Pacemaker (pacemaker-dev)\n";
    return 1;
  }
#endif
  fenced::Daemon daemon(dopts, hv, log);
  if (cfg->cluster) daemon.own_bus(std::make_unique<fenced::CpgBus>(daemon.io_context(), cfg->cluster_group, log));
  if (auto r = daemon.start(); !r) {
    VG_LOG(log, Level::critical, "daemon", "cannot start: {}", r.error().message());
    return 1;
  }
  VG_LOG(log, Level::notice, "daemon", "vguardd 0.1.0 started ({} mode) | config={} libvirt={}",
         cfg->cluster ? "cluster" : "standalone", config_path, cfg->libvirt_uri);
  daemon.run();
  return 0;
}
