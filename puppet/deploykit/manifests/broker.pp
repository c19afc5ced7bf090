# @summary stomp-broker: the embedded STOMP broker, for small sites and single machines.
#
# @param listen `ADDRESS:PORT`
# @param data_dir the journal directory (queues and durable subscriptions survive restarts);
#   undef keeps everything in memory
# @param users login => {password (a pbkdf2 hash from `stomp-broker --hash-password`), read,
#   write}: the users file (0600, the broker's user's); empty = no users file
# @param anonymous whether logins without a password are allowed (with users)
# @param user the daemon's user
# @param settings more keys (`tls-listen`, `max-connections`, `admin-listen`, ...)
# @param package the package
# @param config_dir the config directory
# @param manage_service overrides deploykit::manage_service
class deploykit::broker (
  String[1] $listen = '127.0.0.1:61613',
  Optional[Deploykit::Absolutepath] $data_dir = '/var/lib/stomp-broker',
  Hash[Pattern[/\A[A-Za-z0-9._~-]+\z/], Struct[{
        password        => Pattern[/\Apbkdf2/],
        Optional[read]  => Array[String[1]],
        Optional[write] => Array[String[1]],
  }]] $users = {},
  Boolean $anonymous = false,
  String[1] $user = 'stomp-broker',
  Hash[String[1], Data] $settings = {},
  String[1] $package = 'stomp-broker',
  Deploykit::Absolutepath $config_dir = '/etc/stomp-broker',
  Optional[Boolean] $manage_service = undef,
) {
  include deploykit

  $users_file = $users.empty ? {
    true    => undef,
    default => "${config_dir}/users.yaml",
  }
  $secrets = $users_file ? {
    undef   => {},
    default => { $users_file => Sensitive(epp('deploykit/users.yaml.epp', { 'users' => $users, 'anonymous' => $anonymous })) },
  }

  package { $package:
    ensure => $deploykit::package_ensure,
  }

  deploykit::daemon { 'stomp-broker':
    package        => $package,
    user           => $user,
    group          => $user,
    config_file    => "${config_dir}/stomp-broker.yaml",
    secrets        => $secrets,
    service        => 'stomp-broker',
    manage_service => $manage_service,
    config         => epp('deploykit/stomp-broker.yaml.epp', {
        'listen'     => $listen,
        'data_dir'   => $data_dir,
        'users_file' => $users_file,
        'settings'   => $settings,
    }),
  }
}
