#include "config.h"

#include <boost/asio/ip/address.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>
#include <utility>

namespace vguard::fenced {
namespace po = boost::program_options;
namespace {

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r");
  const auto e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// Maps "section.key" to the line where it (last) appears, so errors can name a line. ProgramOptions
// parses the file; this only locates what it reported.
class LineIndex {
 public:
  explicit LineIndex(const std::string& text) {
    std::istringstream in(text);
    std::string line, section;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      std::string t = trim(line);
      if (t.empty() || t[0] == '#') continue;
      if (t.front() == '[' && t.back() == ']') {
        section = trim(t.substr(1, t.size() - 2));
        if (!first_.count("[" + section + "]")) first_["[" + section + "]"] = n;
        continue;
      }
      const auto eq = t.find('=');
      const std::string key = trim(eq == std::string::npos ? t : t.substr(0, eq));
      const std::string full = section.empty() ? key : section + "." + key;
      lines_[full].push_back(n);
    }
  }
  /// The occurrence-th line of option `name` (0-based), or the first one.
  int line_of(const std::string& name, std::size_t occurrence = 0) const {
    auto it = lines_.find(name);
    if (it == lines_.end() || it->second.empty()) return 0;
    return occurrence < it->second.size() ? it->second[occurrence] : it->second.front();
  }
  int section_line(const std::string& section) const {
    auto it = first_.find("[" + section + "]");
    return it == first_.end() ? 0 : it->second;
  }

 private:
  std::map<std::string, std::vector<int>> lines_;
  std::map<std::string, int> first_;
};

Error config_error(const std::string& path, int line, const std::string& what) {
  return make_error(errc::bad_config, line > 0 ? path + ":" + std::to_string(line) + ": " + what : path + ": " + what);
}

template <class T>
Result<T> parse_number(const std::string& path, int line, const std::string& name, const std::string& v, T lo,
                       T hi) {
  std::size_t pos = 0;
  unsigned long long x = 0;
  try {
    x = std::stoull(v, &pos, 10);
  } catch (const std::exception&) {
    pos = 0;
  }
  if (v.empty() || pos != v.size() || v[0] == '-' || x < lo || x > hi)
    return config_error(path, line,
                        "bad value '" + v + "' for " + name + ": expected an integer from " + std::to_string(lo) +
                            " to " + std::to_string(hi));
  return static_cast<T>(x);
}

// One of a fixed set of words; the error lists them.
template <class T>
Result<T> parse_choice(const std::string& path, int line, const std::string& name, const std::string& v,
                       std::initializer_list<std::pair<const char*, T>> choices) {
  std::string known;
  for (const auto& [word, value] : choices) {
    if (v == word) return value;
    known += known.empty() ? word : std::string(" or ") + word;
  }
  return config_error(path, line, "bad value '" + v + "' for " + name + ": expected " + known);
}

}  // namespace

Policy DaemonConfig::policy() const {
  Policy p;
  for (const auto& k : keys) p.keys[k.key.id] = Policy::KeyRule{k.name, k.allow};
  p.default_budget_ms = request_timeout * 1000;
  p.max_budget_ms = std::max(request_timeout, 300u) * 1000;
  add_fencevirt_rules(fence_virt, p);
  return p;
}

Result<ListenAddress> parse_listen(const std::string& text) {
  ListenAddress a;
  std::string host, port;
  if (text.rfind("vsock:", 0) == 0) {
    a.kind = ListenAddress::Kind::vsock;
    port = text.substr(6);
  } else if (!text.empty() && text[0] == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return make_error(errc::bad_config, "bad listen address '" + text + "': expected [IPV6]:PORT");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0)
      return make_error(errc::bad_config, "bad listen address '" + text + "': expected ADDRESS:PORT or vsock:PORT");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos)
      return make_error(errc::bad_config, "bad listen address '" + text + "': write IPv6 addresses as [ADDR]:PORT");
  }
  auto p = parse_number<unsigned>("", 0, "listen", port, 1, 65535);
  if (!p) return make_error(errc::bad_config, "bad port in listen address '" + text + "'");
  if (a.kind == ListenAddress::Kind::tcp) {
    boost::system::error_code ec;
    boost::asio::ip::make_address(host, ec);
    if (ec)
      return make_error(errc::bad_config, "bad listen address '" + text + "': '" + host +
                                              "' is not a numeric IPv4 or IPv6 address");
  }
  a.host = host;
  a.port = *p;
  return a;
}

Result<DaemonConfig> load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error(errc::bad_config, "cannot read configuration file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const LineIndex index(text);

  DaemonConfig c;
  c.path = path;
  po::options_description desc;
  desc.add_options()                                         //
      ("daemon.libvirt_uri", po::value<std::string>())       //
      ("daemon.listen", po::value<std::vector<std::string>>())  //
      ("daemon.control_socket", po::value<std::string>())    //
      ("daemon.log_file", po::value<std::string>())          //
      ("daemon.pid_file", po::value<std::string>())          //
      ("daemon.log_level", po::value<std::string>())         //
      ("daemon.replay_window", po::value<std::string>())     //
      ("daemon.request_timeout", po::value<std::string>())   //
      ("daemon.reconnect_interval", po::value<std::string>())  //
      ("cluster.enabled", po::value<std::string>())           //
      ("cluster.group", po::value<std::string>())             //
      ("cluster.key_file", po::value<std::string>())          //
      ("cluster.hostname", po::value<std::string>())          //
      ("cluster.pacemaker_history", po::value<std::string>())  //
      ("cluster.nodes", po::value<std::string>())             //
      ("guard.duplicate_policy", po::value<std::string>())    //
      ("guard.reconnect_policy", po::value<std::string>())    //
      ("hook.unreachable_prepare", po::value<std::string>())  //
      ("hook.unreachable_migrate", po::value<std::string>())  //
      ("hook.unreachable_reconnect", po::value<std::string>())  //
      ("hook.timeout", po::value<std::string>());

  po::parsed_options parsed(&desc);
  try {
    std::istringstream is(text);
    parsed = po::parse_config_file(is, desc, /*allow_unregistered=*/true);
  } catch (const po::error& e) {
    // Syntax errors ("invalid line") carry no line number; find the offending line ourselves.
    std::istringstream lines(text);
    std::string line;
    int n = 0;
    while (std::getline(lines, line)) {
      ++n;
      const std::string t = trim(line);
      if (t.empty() || t[0] == '#' || (t.front() == '[' && t.back() == ']')) continue;
      if (t.find('=') == std::string::npos) return config_error(path, n, "expected 'key = value' or '[section]', got '" + t + "'");
    }
    return config_error(path, 0, e.what());
  }

  std::map<std::string, std::size_t> seen;  // occurrences per option name, for line lookup
  std::map<std::string, KeyConfig> keys;
  std::set<std::string> single_seen;
  for (const auto& opt : parsed.options) {
    const std::string& name = opt.string_key;
    const std::size_t occ = seen[name]++;
    const int line = index.line_of(name, occ);
    const std::string value = opt.value.empty() ? std::string() : trim(opt.value.front());
    if (opt.unregistered) {
      if (is_fencevirt_option(name)) {  // [fence_xvm], [fence_virt_*] (fencevirt_config.cpp)
        if (name != "fence_virt_tcp.listen" && name != "fence_virt_serial.group" && !single_seen.insert(name).second)
          return config_error(path, line, "'" + name + "' is set more than once");
        if (auto r = parse_fencevirt_option(c.fence_virt, path, line, name, value); !r) return r.error();
        continue;
      }
      // [key.NAME] sections: file = PATH, allow = GLOB (repeatable).
      if (name.rfind("key.", 0) == 0) {
        const auto dot = name.rfind('.');
        const std::string kname = name.substr(4, dot - 4);
        const std::string field = name.substr(dot + 1);
        if (kname.empty() || dot <= 4)
          return config_error(path, line, "key sections are written [key.NAME]");
        KeyConfig& k = keys[kname];
        k.name = kname;
        k.line = index.section_line("key." + kname);
        if (field == "file") {
          if (!k.file.empty()) return config_error(path, line, "key '" + kname + "' has more than one file");
          k.file = value;
        } else if (field == "allow") {
          if (value.empty()) return config_error(path, line, "empty allow pattern for key '" + kname + "'");
          // Comma-separated lists are accepted too: allow = web-*, db-1
          std::string item;
          std::istringstream items(value);
          while (std::getline(items, item, ',')) {
            item = trim(item);
            if (!item.empty()) k.allow.push_back(item);
          }
        } else {
          return config_error(path, line, "unknown key '" + field + "' in section [key." + kname + "] (known: file, allow)");
        }
        continue;
      }
      if (name == "hook.unreachable_restore")
        return config_error(path, line,
                            "unknown key 'hook.unreachable_restore': a restore is guarded by the "
                            "\"prepare begin\" hook libvirt runs right after it (unreachable_prepare)");
      return config_error(path, line, "unknown key '" + name + "'");
    }
    if (name != "daemon.listen" && !single_seen.insert(name).second)
      return config_error(path, line, "'" + name + "' is set more than once");
    if (name == "daemon.libvirt_uri") {
      if (value.empty()) return config_error(path, line, "libvirt_uri must not be empty");
      c.libvirt_uri = value;
    } else if (name == "daemon.listen") {
      auto l = parse_listen(value);
      if (!l) return config_error(path, line, l.error().context);
      if (std::find(c.listen.begin(), c.listen.end(), value) != c.listen.end())
        return config_error(path, line, "listen address '" + value + "' is given twice");
      c.listen.push_back(value);
    } else if (name == "daemon.control_socket") {
      if (value.empty() || value[0] != '/') return config_error(path, line, "control_socket must be an absolute path");
      c.control_socket = value;
    } else if (name == "daemon.log_file") {
      if (value.empty() || value[0] != '/') return config_error(path, line, "log_file must be an absolute path");
      c.log_file = value;
    } else if (name == "daemon.pid_file") {
      c.pid_file = value;
    } else if (name == "daemon.log_level") {
      static const std::set<std::string> levels{"critical", "error", "warning", "notice", "info", "debug", "trace"};
      if (!levels.count(value))
        return config_error(path, line, "bad log_level '" + value + "' (critical, error, warning, notice, info, debug, trace)");
      c.log_level = value;
    } else if (name == "daemon.replay_window") {
      auto v = parse_number<unsigned>(path, line, "replay_window", value, 1, 3600);
      if (!v) return v.error();
      c.replay_window = *v;
    } else if (name == "daemon.request_timeout") {
      auto v = parse_number<unsigned>(path, line, "request_timeout", value, 1, 3600);
      if (!v) return v.error();
      c.request_timeout = *v;
    } else if (name == "cluster.enabled") {
      if (value == "yes" || value == "true" || value == "1") {
        c.cluster = true;
      } else if (value == "no" || value == "false" || value == "0") {
        c.cluster = false;
      } else {
        return config_error(path, line, "bad value '" + value + "' for enabled: expected yes or no");
      }
    } else if (name == "cluster.pacemaker_history") {
      if (value == "yes" || value == "true" || value == "1") {
        c.pacemaker_history = true;
      } else if (value == "no" || value == "false" || value == "0") {
        c.pacemaker_history = false;
      } else {
        return config_error(path, line, "bad value '" + value + "' for pacemaker_history: expected yes or no");
      }
    } else if (name == "cluster.nodes") {
      std::string item;
      std::istringstream items(value);
      while (std::getline(items, item, ',')) {
        item = trim(item);
        auto id = parse_number<std::uint32_t>(path, line, "nodes", item, 1, 0xfffffffeU);
        if (!id) return id.error();
        c.nodes.push_back(*id);
      }
      if (c.nodes.empty()) return config_error(path, line, "nodes needs at least one corosync node id");
    } else if (name == "cluster.group") {
      if (value.empty() || value.size() > 127) return config_error(path, line, "group must be 1 to 127 characters");
      if (value == "fence-agents")
        return config_error(path, line, "group 'fence-agents' is fence_virtd's; choose another name");
      c.cluster_group = value;
    } else if (name == "cluster.key_file") {
      c.cluster_key_file = value;
    } else if (name == "cluster.hostname") {
      if (value.empty()) return config_error(path, line, "hostname must not be empty");
      c.hostname = value;
    } else if (name == "guard.duplicate_policy") {
      using D = GuardPolicy::Duplicate;
      auto v = parse_choice<D>(path, line, "duplicate_policy", value,
                               {{"alert", D::alert}, {"pause", D::pause}, {"destroy", D::destroy}});
      if (!v) return v.error();
      c.guard.duplicate = *v;
    } else if (name == "guard.reconnect_policy") {
      using R = GuardPolicy::Reconnect;
      auto v = parse_choice<R>(path, line, "reconnect_policy", value, {{"alert", R::alert}, {"refuse", R::refuse}});
      if (!v) return v.error();
      c.guard.reconnect = *v;
    } else if (name.rfind("hook.unreachable_", 0) == 0) {
      auto v = parse_choice<bool>(path, line, name.substr(5), value, {{"refuse", true}, {"allow", false}});
      if (!v) return v.error();
      if (name == "hook.unreachable_prepare") c.hook_refuse_prepare = *v;
      if (name == "hook.unreachable_migrate") c.hook_refuse_migrate = *v;
      if (name == "hook.unreachable_reconnect") c.hook_refuse_reconnect = *v;
    } else if (name == "hook.timeout") {
      auto v = parse_number<unsigned>(path, line, "timeout", value, 1, 300);
      if (!v) return v.error();
      c.hook_timeout = *v;
    } else if (name == "daemon.reconnect_interval") {
      auto v = parse_number<unsigned>(path, line, "reconnect_interval", value, 1, 600);
      if (!v) return v.error();
      c.reconnect_interval = *v;
    }
  }

  if (c.cluster) {
    if (c.cluster_key_file.empty())
      return config_error(path, index.section_line("cluster"), "cluster mode needs key_file in [cluster]");
    auto k = proto::load_key_file(c.cluster_key_file);
    if (!k) return config_error(path, index.line_of("cluster.key_file"), k.error().message());
    c.cluster_key = std::move(*k);
  }
  std::map<proto::KeyId, std::string> ids;
  for (auto& [kname, k] : keys) {
    if (k.file.empty()) return config_error(path, k.line, "key '" + kname + "' has no 'file'");
    auto loaded = proto::load_key_file(k.file);
    if (!loaded) return config_error(path, index.line_of("key." + kname + ".file"), loaded.error().message());
    k.key = std::move(*loaded);
    auto [it, fresh] = ids.emplace(k.key.id, kname);
    if (!fresh)
      return config_error(path, k.line, "keys '" + it->second + "' and '" + kname + "' use the same key bytes");
    c.keys.push_back(std::move(k));
  }
  std::vector<std::string> key_names;
  for (const auto& k : c.keys) key_names.push_back(k.name);
  if (auto r = finish_fencevirt_config(c.fence_virt, path, c.log_file, key_names,
                                       [&](const std::string& s) { return index.section_line(s); });
      !r)
    return r.error();
  return c;
}

}  // namespace vguard::fenced
