#!/usr/bin/ruby
# ruby-stomp (1.4.10) peer for cross-client tests; same interface as py_peer.py:
#   rb_peer.rb publish   --port P --dest D --count N --body-prefix S [--version 1.0|1.2] ...
#   rb_peer.rb subscribe --port P --dest D --count N [--ack auto|client-individual]
#                        [--ready-file F] [--timeout SEC] ...
# publish sends bodies S0..S<N-1>, each with a receipt, and prints "published N" once all receipts are in.
# subscribe prints each body on its own line and exits 0 after N messages. Exit 1 on timeout or error.
require 'optparse'
require 'stomp'
require 'timeout'

o = { host: '127.0.0.1', login: 'guest', passcode: 'guest', body_prefix: 'msg-', version: '1.0',
      ack: 'auto', timeout: 20.0 }
mode = ARGV.shift
OptionParser.new do |p|
  p.on('--host H') { |v| o[:host] = v }
  p.on('--port P', Integer) { |v| o[:port] = v }
  p.on('--login L') { |v| o[:login] = v }
  p.on('--passcode W') { |v| o[:passcode] = v }
  p.on('--dest D') { |v| o[:dest] = v }
  p.on('--count N', Integer) { |v| o[:count] = v }
  p.on('--body-prefix S') { |v| o[:body_prefix] = v }
  p.on('--version V', %w[1.0 1.2]) { |v| o[:version] = v }
  p.on('--ack A', %w[auto client-individual]) { |v| o[:ack] = v }
  p.on('--ready-file F') { |v| o[:ready_file] = v }
  p.on('--timeout SEC', Float) { |v| o[:timeout] = v }
end.parse!
unless %w[publish subscribe].include?(mode) && o[:port] && o[:dest] && o[:count]
  abort 'usage: rb_peer.rb publish|subscribe --port P --dest D --count N [options]'
end
$stdout.sync = true

def fail(why)
  warn "rb_peer: #{why}"
  exit! 1
end

# Every frame from the broker goes through here; ERROR ends the run.
def next_frame(conn)
  f = conn.receive
  fail 'connection lost' if f.nil?
  fail "ERROR frame: #{f.headers['message']} #{f.body.inspect}" if f.command == 'ERROR'
  f
end

begin
  Timeout.timeout(o[:timeout]) do
    # RabbitMQ wants an existing vhost in the host header; ruby-stomp needs host for 1.1+.
    hdrs = o[:version] == '1.0' ? {} : { 'accept-version' => '1.2', 'host' => '/', 'heart-beat' => '0,0' }
    conn = Stomp::Connection.new(hosts: [{ login: o[:login], passcode: o[:passcode], host: o[:host], port: o[:port] }],
                                 connect_headers: hdrs, reliable: false)
    fail "connect refused: #{conn.connection_frame.body}" unless conn.connection_frame.command == 'CONNECTED'

    if mode == 'publish'
      o[:count].times { |i| conn.publish(o[:dest], "#{o[:body_prefix]}#{i}", 'receipt' => "r#{i}") }
      receipts = 0
      (receipts += 1 if next_frame(conn).command == 'RECEIPT') while receipts < o[:count]
      puts "published #{o[:count]}"
    else
      conn.subscribe(o[:dest], 'id' => '1', 'ack' => o[:ack], 'receipt' => 'sub-ready')
      got = 0
      while got < o[:count]
        f = next_frame(conn)
        if f.command == 'RECEIPT'
          File.open(o[:ready_file], 'a') {} if o[:ready_file] && f.headers['receipt-id'] == 'sub-ready'
        elsif f.command == 'MESSAGE'
          puts f.body
          if o[:ack] == 'client-individual'
            o[:version] == '1.0' ? conn.ack(f.headers['message-id']) : conn.ack(f.headers['ack'])
          end
          got += 1
        end
      end
    end
    # DISCONNECT with a receipt: every ACK sent before it has been processed. Its outcome doesn't matter.
    begin
      Timeout.timeout(5) { conn.disconnect('receipt' => 'bye') }
    rescue StandardError, Timeout::Error
      nil
    end
  end
rescue Timeout::Error
  fail "timeout after #{o[:timeout]}s"
rescue StandardError => e
  fail "#{e.class}: #{e.message}"
end
exit! 0
