#include <gtest/gtest.h>

#include "decide.h"

namespace vguard::guard {
namespace {

TEST(Guard, PlanTable) {
  struct Case {
    const char* op;
    const char* sub;
    std::optional<proto::Action> ask;
    bool refuse;
  } cases[] = {
      {"prepare", "begin", proto::Action::hook_prepare, true},
      {"release", "end", proto::Action::hook_release, false},
      {"reconnect", "begin", std::nullopt, false},  // a failing reconnect hook kills the guest
      {"start", "begin", std::nullopt, false},
      {"started", "begin", std::nullopt, false},
      {"stopped", "end", std::nullopt, false},
      {"prepare", "end", std::nullopt, false},
  };
  for (const auto& c : cases) {
    const Plan p = plan_for(c.op, c.sub);
    EXPECT_EQ(p.ask, c.ask) << c.op << " " << c.sub;
    if (p.ask) {
      EXPECT_EQ(p.refuse_if_unreachable, c.refuse) << c.op << " " << c.sub;
    }
  }
}

TEST(Guard, UuidFromXml) {
  EXPECT_EQ(uuid_from_xml("<domain type='kvm'><name>a</name><uuid>AAAAAAAA-0000-0000-0000-000000000001</uuid></domain>"),
            "aaaaaaaa-0000-0000-0000-000000000001");
  EXPECT_FALSE(uuid_from_xml("<domain><name>a</name></domain>"));
  EXPECT_FALSE(uuid_from_xml("<domain><uuid>not-a-uuid</uuid></domain>"));
  EXPECT_FALSE(uuid_from_xml("<domain><uuid>"));
  EXPECT_FALSE(uuid_from_xml(""));
}

}  // namespace
}  // namespace vguard::guard
