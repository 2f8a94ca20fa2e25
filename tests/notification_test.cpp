#include "amsg/notification.hpp"

#include <gtest/gtest.h>

namespace amsg {
namespace {

TEST(Notification, TextFormsMatchTheSeed) {
  EXPECT_EQ((Notification{"request_123", Outcome::ok, "", "t"}).text(), "request_123:ok");
  EXPECT_EQ((Notification{"user_request_456", Outcome::error, "Invalid data format", "t"}).text(),
            "user_request_456:err(Invalid data format)");
  EXPECT_EQ((Notification{"x", Outcome::cancelled, "cancelled", "t"}).text(), "x:err(cancelled)");
}

TEST(Notification, IsSuccessOnlyForOk) {
  EXPECT_TRUE((Notification{"a", Outcome::ok, "", ""}).is_success());
  EXPECT_FALSE((Notification{"a", Outcome::error, "e", ""}).is_success());
  EXPECT_FALSE((Notification{"a", Outcome::cancelled, "cancelled", ""}).is_success());
}

TEST(Notification, ParsesTheSeedExamples) {
  auto ok = parse_notification("request_123:ok");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->id, "request_123");
  EXPECT_EQ(ok->outcome, Outcome::ok);
  auto err = parse_notification("user_request_456:err(Invalid data format)");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->id, "user_request_456");
  EXPECT_EQ(err->outcome, Outcome::error);
  EXPECT_EQ(err->error, "Invalid data format");
  auto cancelled = parse_notification("q:err(cancelled)");
  ASSERT_TRUE(cancelled);
  EXPECT_EQ(cancelled->outcome, Outcome::cancelled);
}

TEST(Notification, RoundTripsIdsWithColonsAndMessagesWithParentheses) {
  const Notification cases[] = {
      {"node:7:req:42", Outcome::ok, "", ""},
      {"a:b", Outcome::error, "bad (really) bad", ""},
      {"::", Outcome::error, "(", ""},
      {"x:ok:y", Outcome::error, ")(:ok", ""},
      {"id", Outcome::error, "nested :err(inner) text", ""},
      {"", Outcome::ok, "", ""},
      {"id:", Outcome::error, "", ""},
      {"lane:3", Outcome::cancelled, "cancelled", ""},
  };
  for (const auto& n : cases) {
    auto parsed = parse_notification(n.text());
    ASSERT_TRUE(parsed) << n.text();
    EXPECT_EQ(parsed->id, n.id) << n.text();
    EXPECT_EQ(parsed->outcome, n.outcome) << n.text();
    EXPECT_EQ(parsed->error, n.error) << n.text();
    EXPECT_EQ(parsed->text(), n.text());
  }
}

TEST(Notification, RejectsTextOfNeitherForm) {
  EXPECT_FALSE(parse_notification(""));
  EXPECT_FALSE(parse_notification("abc"));
  EXPECT_FALSE(parse_notification("abc:err(unterminated"));
  EXPECT_FALSE(parse_notification("abc(x)"));
  EXPECT_FALSE(parse_notification("abc:OK"));
}

}  // namespace
}  // namespace amsg
