#!/usr/bin/ruby
# Publish throughput of ruby-stomp (1.4.10) with a receipt on every SEND.
#   pub_bench.rb --port P --dest D --count N --size BYTES --mode pipelined|sync [--version 1.0|1.2]
# pipelined: sends everything with receipt headers, at most --window receipts outstanding, and stops the
# clock at the last receipt; sync: waits for each receipt before the next send. Prints one JSON line.
# Uses Stomp::Connection single-threaded: receipts are read in between sends once the window is full.
require 'json'
require 'optparse'
require 'stomp'

o = { host: '127.0.0.1', login: 'guest', passcode: 'guest', dest: '/topic/bench', count: 10_000, size: 200,
      mode: 'pipelined', window: 1000, version: '1.0' }
OptionParser.new do |p|
  p.on('--host H') { |v| o[:host] = v }
  p.on('--port P', Integer) { |v| o[:port] = v }
  p.on('--login L') { |v| o[:login] = v }
  p.on('--passcode W') { |v| o[:passcode] = v }
  p.on('--dest D') { |v| o[:dest] = v }
  p.on('--count N', Integer) { |v| o[:count] = v }
  p.on('--size BYTES', Integer) { |v| o[:size] = v }
  p.on('--mode M', %w[pipelined sync]) { |v| o[:mode] = v }
  p.on('--window N', Integer) { |v| o[:window] = v }
  p.on('--version V', %w[1.0 1.2]) { |v| o[:version] = v }
end.parse!
abort 'usage: pub_bench.rb --port P [options]' unless o[:port]

hdrs = o[:version] == '1.0' ? {} : { 'accept-version' => '1.2', 'host' => '/', 'heart-beat' => '0,0' }
conn = Stomp::Connection.new(hosts: [{ login: o[:login], passcode: o[:passcode], host: o[:host], port: o[:port] }],
                             connect_headers: hdrs, reliable: false)
abort "pub_bench: connect refused: #{conn.connection_frame.body}" unless conn.connection_frame.command == 'CONNECTED'

acked = 0
read_receipt = lambda do
  f = conn.receive
  abort 'pub_bench: connection lost' if f.nil?
  abort "pub_bench: ERROR frame: #{f.headers['message']}" if f.command == 'ERROR'
  acked += 1 if f.command == 'RECEIPT'
end

body = 'x' * o[:size]
window = o[:mode] == 'sync' ? 1 : o[:window]
t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
o[:count].times do |i|
  read_receipt.call while i - acked >= window
  conn.publish(o[:dest], body, 'receipt' => i.to_s)
end
read_receipt.call while acked < o[:count]
secs = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
conn.disconnect
puts JSON.generate(client: 'ruby-stomp', mode: o[:mode], count: o[:count], size: o[:size],
                   seconds: secs.round(4), msgs_per_s: (o[:count] / secs).round(1))
