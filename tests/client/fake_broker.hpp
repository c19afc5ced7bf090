#pragma once

// A scripted in-process STOMP peer on 127.0.0.1:0 for client tests: the test reads what the
// client wrote (frames and heart-beats, plus the raw bytes) and writes exact replies.
#include "bus/stomp/frame.hpp"
#include "bus/stomp/parser.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <variant>

namespace test {

struct heartbeat_item {};
using item = std::variant<heartbeat_item, bus::stomp::frame>;

class fake_conn {
public:
    explicit fake_conn(boost::asio::ip::tcp::socket s) : socket_(std::move(s)) {}

    /// Next heart-beat or frame from the client; nullopt on timeout or EOF.
    boost::asio::awaitable<std::optional<item>> next(std::chrono::milliseconds timeout);
    /// Next frame, skipping heart-beats; nullopt on timeout or EOF.
    boost::asio::awaitable<std::optional<bus::stomp::frame>> frame(std::chrono::milliseconds timeout);
    boost::asio::awaitable<void> send(std::string bytes);
    /// Answers the CONNECT that must come first with CONNECTED carrying `headers`.
    boost::asio::awaitable<bus::stomp::frame> handshake(std::string connected_headers);
    void close();
    bool eof() const { return eof_; }

    std::string raw;  ///< every byte received so far
    int heartbeats = 0;

private:
    boost::asio::ip::tcp::socket socket_;
    bus::stomp::parser parser_;
    std::string buf_;
    bool eof_ = false;
};

class fake_broker {
public:
    explicit fake_broker(const boost::asio::any_io_executor& ex);
    std::uint16_t port() const;
    std::string url() const { return "stomp://127.0.0.1:" + std::to_string(port()); }
    boost::asio::awaitable<std::shared_ptr<fake_conn>> accept(std::chrono::milliseconds timeout);
    void close();

private:
    boost::asio::ip::tcp::acceptor acceptor_;
};

std::string receipt(std::string_view id);

} // namespace test
