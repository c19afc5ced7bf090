# @summary The settings every deploykit daemon shares: the brokers, the credentials, signing,
# and how packages and services are handled.
#
# Include it (with hiera data) and then the classes of the daemons a host runs:
#
#   class { 'deploykit':
#     brokers  => ['broker01.example.com:61613', 'broker02.example.com:61613'],
#     login    => 'deploykit',
#     password => Sensitive('s3cret'),
#   }
#   include deploykit::stomp_git
#
# @param brokers `host:port` of each broker, in failover order (the original's `rserver`)
# @param scheme `stomp`, or `stomp+ssl` to verify the broker's certificate and name
# @param login the broker login (in the URL); undef for an anonymous broker
# @param password the broker password, written to each daemon's `passcode-file` (0600, owned by
#   the daemon's user), never into a config file
# @param stomp_options the original's `stomp-options` (reconnect delays); the module's data has
#   the value the original shipped everywhere
# @param tls_ca_file a CA bundle for `stomp+ssl` brokers, instead of the system's
# @param wire_format what producers send: `legacy` (the original's bodies), `native` or `both`
# @param signing_keys the keyring (key id => secret of 16 or more characters): each daemon gets a
#   0600 copy, used as `signing-key-file` (producers) and `verify-key-file` (consumers)
# @param signing_key_id the key producers sign with (one of signing_keys)
# @param require_signatures consumers drop unsigned and forged events (needs signing_keys)
# @param heartbeat_topic where daemons send their heartbeat events
# @param package_ensure `installed`, `latest` (the original's stomp-repo idea), or a version
# @param manage_service manage each daemon's service; false leaves it alone
# @param service_ensure the services' running state
# @param service_enable start the services at boot
# @param service_provider Puppet's service provider (default: Puppet's, systemd on Debian 12)
# @param systemd_offline for hosts where systemd is not running (image builds, containers,
#   chroots): the unit's enablement is set with `systemctl enable`/`disable`, which work on
#   the unit files without a running systemd, and the running state is left to the next boot
# @param extra_settings more keys for every daemon's config (libbus keys such as `heartbeat-ms`)
class deploykit (
  String $stomp_options,  # module data (data/common.yaml): the original's value
  Array[Pattern[/\A[A-Za-z0-9.:\[\]-]+:[0-9]+\z/], 1] $brokers = ['localhost:61613'],
  Enum['stomp', 'stomp+ssl'] $scheme = 'stomp',
  Optional[Pattern[/\A[A-Za-z0-9._~-]+\z/]] $login = undef,
  Optional[Sensitive[String[1]]] $password = undef,
  Optional[Deploykit::Absolutepath] $tls_ca_file = undef,
  Optional[Deploykit::Wireformat] $wire_format = undef,
  Optional[Sensitive[Hash[Pattern[/\A[A-Za-z0-9._-]+\z/], String[16]]]] $signing_keys = undef,
  Optional[String[1]] $signing_key_id = undef,
  Boolean $require_signatures = false,
  Optional[Deploykit::Topic] $heartbeat_topic = undef,
  String[1] $package_ensure = 'installed',
  Boolean $manage_service = true,
  Enum['running', 'stopped'] $service_ensure = 'running',
  Boolean $service_enable = true,
  Optional[String[1]] $service_provider = undef,
  Boolean $systemd_offline = false,
  Hash[String[1], Data] $extra_settings = {},
) {
  if $require_signatures and $signing_keys == undef {
    fail('deploykit: require_signatures needs signing_keys')
  }
  if $signing_key_id != undef {
    if $signing_keys == undef or !($signing_key_id in $signing_keys.unwrap) {
      fail("deploykit: signing_key_id '${signing_key_id}' is not in signing_keys")
    }
  }
  $rserver = deploykit::rserver($brokers, $login, $scheme)
}
