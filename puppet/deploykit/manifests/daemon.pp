# @summary One daemon's (or hook's) config file, secret files and service. Private: the
# per-daemon classes declare it.
#
# @param config the rendered YAML
# @param user the daemon's user: owns the secret files (the runtime's secret-file policy accepts
#   only files owned by the reading user or root, mode 0600)
# @param group the group that reads the config file (0640 root:group)
# @param config_file where the config goes
# @param secrets secret files to write beside it (absolute path => content)
# @param package the package whose files these are
# @param service the systemd unit, or undef for hooks and tools that have none
# @param manage_service overrides deploykit::manage_service for this daemon
define deploykit::daemon (
  String $config,
  String[1] $user,
  String[1] $group,
  Deploykit::Absolutepath $config_file,
  String[1] $package,
  Hash[Deploykit::Absolutepath, Sensitive[String]] $secrets = {},
  Optional[String[1]] $service = undef,
  Optional[Boolean] $manage_service = undef,
) {
  # private: declared by the deploykit::* classes only

  $secrets.each |$path, $content| {
    file { $path:
      ensure    => file,
      owner     => $user,
      group     => $group,
      mode      => '0600',
      content   => $content,
      show_diff => false,
      require   => Package[$package],
      before    => File[$config_file],
    }
  }

  file { $config_file:
    ensure    => file,
    owner     => 'root',
    group     => $group,
    mode      => '0640',
    content   => $config,
    show_diff => false,
    require   => Package[$package],
  }

  $managed = $manage_service.lest || { $deploykit::manage_service }
  if $service != undef and $managed {
    if $deploykit::systemd_offline {
      # systemctl enable/disable/is-enabled work on the unit files when systemd is not running;
      # start/stop cannot, so the running state is the next boot's.
      $is_enabled = [['/bin/systemctl', 'is-enabled', '--quiet', "${service}.service"]]
      if $deploykit::service_enable {
        exec { "deploykit: systemctl enable ${service}":
          command => ['/bin/systemctl', 'enable', '--quiet', "${service}.service"],
          unless  => $is_enabled,
          require => Package[$package],
        }
      } else {
        exec { "deploykit: systemctl disable ${service}":
          command => ['/bin/systemctl', 'disable', '--quiet', "${service}.service"],
          onlyif  => $is_enabled,
          require => Package[$package],
        }
      }
    } else {
      service { $service:
        ensure    => $deploykit::service_ensure,
        enable    => $deploykit::service_enable,
        provider  => $deploykit::service_provider,
        require   => Package[$package],
        subscribe => File[[$config_file] + $secrets.keys],
      }
    }
  }
}
