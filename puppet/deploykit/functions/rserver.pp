# @summary The original's `rserver` failover URL from a list of brokers.
#
#   deploykit::rserver(['broker01:61613', 'broker02:61613'], 'deploykit')
#   # => failover://(stomp://deploykit@broker01:61613,stomp://deploykit@broker02:61613)
#
# The password never goes into the URL: it is the daemons' `passcode-file` (a 0600 file), so a
# config file or a process listing never shows it.
#
# @param brokers `host:port` of each broker, tried in this order (with `randomize=false`)
# @param login the broker login, or undef for anonymous
# @param scheme `stomp` or `stomp+ssl` (certificate and host name verified)
# @return [String] the rserver value
function deploykit::rserver(
  Array[Pattern[/\A[A-Za-z0-9.:\[\]-]+:[0-9]+\z/], 1] $brokers,
  Optional[Pattern[/\A[A-Za-z0-9._~-]+\z/]] $login = undef,
  Enum['stomp', 'stomp+ssl'] $scheme = 'stomp',
) >> String {
  $userinfo = $login ? {
    undef   => '',
    default => "${login}@",
  }
  $urls = $brokers.map |$b| { "${scheme}://${userinfo}${b}" }
  "failover://(${urls.join(',')})"
}
