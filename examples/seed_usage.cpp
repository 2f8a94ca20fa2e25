// The seed document's usage sections 1-4, in amsg.
//
//   1. initialise the system     2. create custom handlers
//   3. send messages             4. handle responses (notifications)

#include <amsg/amsg.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

namespace {

// 2. A custom handler: it captures a shared resource and updates it from every message.
struct SomeResource {
  std::mutex mutex;
  std::vector<std::string> processed;
};

class MyHandler final : public amsg::Handler {
 public:
  MyHandler(std::string name, std::shared_ptr<SomeResource> shared_resource)
      : name_{std::move(name)}, shared_resource_{std::move(shared_resource)} {}

  asio::awaitable<void> handle(amsg::Message& message) override {
    // Process the message asynchronously (a timer stands in for real I/O).
    asio::steady_timer io{co_await asio::this_coro::executor, std::chrono::milliseconds{1}};
    co_await io.async_wait(asio::use_awaitable);
    std::string processed{message.payload.as_string_view()};
    if (processed.empty()) throw std::runtime_error("Invalid data format");
    // Update the shared resource.
    std::lock_guard lock{shared_resource_->mutex};
    shared_resource_->processed.push_back(name_ + ": " + processed);
  }

 private:
  std::string name_;
  std::shared_ptr<SomeResource> shared_resource_;
};

}  // namespace

int main() {
  // 1. Initialise the system: a manager running at most 4 handlers at once.
  amsg::Manager manager{amsg::ManagerOptions{.concurrency = 4}};

  // 2. Register handlers, as a batch (the seed's register_handlers).
  auto shared_resource = std::make_shared<SomeResource>();
  amsg::HandlerMap handlers;
  handlers.emplace("my_message_type", std::make_shared<MyHandler>("my_handler", shared_resource));
  handlers.emplace("ping", amsg::make_handler([](amsg::Message&) -> asio::awaitable<void> { co_return; }));
  manager.register_handlers(std::move(handlers));
  manager.start();

  // 4. Handle responses: a coroutine reads notifications as they come.
  asio::io_context app;
  int successes = 0;
  int errors = 0;
  asio::co_spawn(
      app,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 3; ++i) {
          auto response = co_await manager.async_receive();
          if (!response) break;
          if (response->is_success()) {
            ++successes;
            std::printf("ok:  %s\n", response->text().c_str());  // "request_123:ok"
          } else {
            ++errors;
            std::printf("err: %s\n", response->text().c_str());  // "user_request_456:err(Invalid data format)"
          }
        }
      },
      asio::detached);

  // 3. Send messages: with a notification id, without one, and one that fails.
  manager.send(amsg::Message{"my_message_type", amsg::Payload::copy_of("Hello, World!"), "request_123"});
  manager.send(amsg::Message{"my_message_type", amsg::Payload{}, "user_request_456"});
  manager.send(amsg::Message{"ping", amsg::Payload{}});  // fire and forget
  manager.send(amsg::Message{"ping", amsg::Payload{}, "ping_1"});

  app.run();
  manager.shutdown();
  std::printf("processed by the handler: %zu; notifications: %d ok, %d err\n", shared_resource->processed.size(),
              successes, errors);
  std::printf("stats: %s\n", manager.stats().to_string().c_str());
  return successes == 2 && errors == 1 ? 0 : 1;
}
