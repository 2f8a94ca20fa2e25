#include "amsg/handler_registry.hpp"

#include <gtest/gtest.h>

#include "amsg/errors.hpp"
#include "test_support.hpp"

namespace amsg {
namespace {

using test::noop;

TEST(HandlerRegistry, AddingAnExistingTypeIsAClearError) {
  HandlerRegistry r;
  r.add("a", noop());
  try {
    r.add("a", noop());
    FAIL() << "expected HandlerExistsError";
  } catch (const HandlerExistsError& e) {
    EXPECT_NE(std::string{e.what()}.find("'a'"), std::string::npos);
  }
}

TEST(HandlerRegistry, ReplaceIsExplicit) {
  HandlerRegistry r;
  EXPECT_FALSE(r.replace("a", noop()));
  auto h = noop();
  EXPECT_TRUE(r.replace("a", h));
  EXPECT_EQ(r.snapshot()->find("a"), h.get());
}

TEST(HandlerRegistry, AddAllIsAllOrNothing) {
  HandlerRegistry r;
  r.add("b", noop());
  HandlerMap batch{{"a", noop()}, {"b", noop()}, {"c", noop()}};
  EXPECT_THROW(r.add_all(std::move(batch)), HandlerExistsError);
  EXPECT_EQ(r.types(), std::vector<std::string>{"b"});
  r.add_all(HandlerMap{{"a", noop()}, {"c", noop()}});
  EXPECT_EQ(r.types(), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(HandlerRegistry, RemoveAndVersioning) {
  HandlerRegistry r;
  const auto v0 = r.version();
  r.add("a", noop());
  EXPECT_GT(r.version(), v0);
  EXPECT_TRUE(r.contains("a"));
  const auto v1 = r.version();
  EXPECT_TRUE(r.remove("a"));
  EXPECT_FALSE(r.remove("a"));
  EXPECT_GT(r.version(), v1);
  EXPECT_FALSE(r.contains("a"));
}

TEST(HandlerRegistry, SnapshotsKeepHandlersAlive) {
  HandlerRegistry r;
  auto h = noop();
  std::weak_ptr<Handler> weak = h;
  r.add("a", std::move(h));
  auto snap = r.snapshot();
  r.remove("a");
  EXPECT_FALSE(weak.expired());
  snap.reset();
  EXPECT_TRUE(weak.expired());
}

TEST(HandlerRegistry, RejectsEmptyTypeAndNullHandler) {
  HandlerRegistry r;
  EXPECT_THROW(r.add("", noop()), std::invalid_argument);
  EXPECT_THROW(r.add("a", nullptr), std::invalid_argument);
}

}  // namespace
}  // namespace amsg
