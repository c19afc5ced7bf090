#!/usr/bin/ruby
# Speed of ruby-stomp's (1.4.10) own frame parser on an in-memory byte string.
#   parse_bench.rb FILE [--version 1.0|1.2]      FILE holds many concatenated server frames
# Calls the library's real reader, Stomp::Connection#_receive (connection/netio.rb: gets for the command
# and headers, read(content-length) or readline("\0") for the body, the trailing-EOL drain, Message.new
# and header decoding), on a StringIO instead of the socket. Differences from a live connection: no
# IO.select before each read (noiosel=true; IO.select cannot take a StringIO), and ready? is "not at EOF".
# Prints one JSON line; MB = 10^6 bytes.
require 'json'
require 'optparse'
require 'stringio'
require 'stomp'

version = '1.0'
OptionParser.new { |p| p.on('--version V', %w[1.0 1.2]) { |v| version = v } }.parse!
abort 'usage: parse_bench.rb FILE [--version 1.0|1.2]' unless ARGV.size == 1
data = File.binread(ARGV[0]) # binary, like a socket's reads

# A Connection that never connected, with the state _receive reads (as set by Connection#initialize and
# the CONNECTED handshake when heart-beats are off).
conn = Stomp::Connection.allocate
conn.instance_eval do
  @read_semaphore = Mutex.new
  @gets_semaphore = Mutex.new
  @protocol = version
  @hbr = false
  @usecrlf = false
  @jruby = false
  @nto_cmd_read = true
  @iosto = 5
end

io = StringIO.new(data)
def io.ready?
  !eof?
end

frames = 0
t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
until io.eof?
  msg = conn.send(:_receive, io, false, true)
  break if msg.nil?
  frames += 1
end
secs = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
puts JSON.generate(parser: 'ruby-stomp', bytes: data.bytesize, frames: frames, seconds: secs.round(4),
                   mb_per_s: (data.bytesize / 1e6 / secs).round(2), frames_per_s: (frames / secs).round(1))
