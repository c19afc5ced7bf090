# @summary The commit hooks (package deploykit-hooks): stomp-post-receive for git servers and
# svn-stomp for Subversion, their configs, and the git hook installed into the repositories.
#
# The hooks are installed by the hooks themselves (`stomp-post-receive --install PATH`: a symlink
# to the binary; `svn-stomp -c CONFIG --install REPOS`: a two-line exec script; an existing hook
# is kept as *.chained), run as the server's user and only when the same command with `--check`
# says a repository lacks it.
#
# @param user the git (or svn) server's user, who runs the hooks: owns the secret files
# @param group the group that reads the configs
# @param git_repositories bare repositories, or directories of `*.git` repositories (gitolite's
#   `repositories/`), to install the post-receive hook into
# @param trigger_topic where commit events go
# @param report_topic where the git hook's one-liners go (the original's gitolite topic)
# @param spool_dir the outbox when the broker is away (default: in each repository)
# @param settings more keys for the git hook's config
# @param svn whether to configure svn-stomp too (`/etc/svn-stomp/svn-stomp.yaml`)
# @param svn_repositories Subversion repositories to write the post-commit hook into
#   (`svn-stomp -c CONFIG --install REPOS`, when `--install REPOS --check` says it is not there)
# @param svn_report_topic where svn-stomp's one-liners go
# @param svn_settings more keys for svn-stomp's config (`svnlook`, `svnlook-timeout`)
# @param package the package
class deploykit::hooks (
  String[1] $user = 'git',
  String[1] $group = $user,
  Array[Deploykit::Absolutepath] $git_repositories = [],
  Deploykit::Topic $trigger_topic = 'future.git.commits',
  Deploykit::Topic $report_topic = 'future.events.gitolite',
  Optional[Deploykit::Absolutepath] $spool_dir = undef,
  Hash[String[1], Data] $settings = {},
  Boolean $svn = false,
  Deploykit::Topic $svn_report_topic = 'future.events.svnserver',
  Hash[String[1], Data] $svn_settings = {},
  Array[Deploykit::Absolutepath] $svn_repositories = [],
  String[1] $package = 'deploykit-hooks',
) {
  include deploykit

  $spool = { 'spool-dir' => $spool_dir }.filter |$k, $v| { $v != undef }

  package { $package:
    ensure => $deploykit::package_ensure,
  }

  $git_bus = deploykit::bus('/etc/stomp-postrec', false)
  deploykit::daemon { 'stomp-post-receive':
    package     => $package,
    user        => $user,
    group       => $group,
    config_file => '/etc/stomp-postrec/stomp-postrec.yaml',
    secrets     => $git_bus['secrets'],
    config      => epp('deploykit/hook.yaml.epp', {
        'class'         => 'deploykit::hooks',
        'what'          => 'stomp-post-receive: the git post-receive hook',
        'bus'           => $git_bus['settings'],
        'trigger_topic' => $trigger_topic,
        'report_topic'  => $report_topic,
        'settings'      => $spool + $settings,
    }),
  }

  $git_repositories.each |$path| {
    exec { "deploykit: stomp-post-receive --install ${path}":
      command => ['/usr/bin/stomp-post-receive', '--install', $path],
      unless  => [['/usr/bin/stomp-post-receive', '--install', $path, '--check']],
      user    => $user,
      require => [Package[$package], File['/etc/stomp-postrec/stomp-postrec.yaml']],
    }
  }

  if $svn {
    $svn_bus = deploykit::bus('/etc/svn-stomp', false)
    deploykit::daemon { 'svn-stomp':
      package     => $package,
      user        => $user,
      group       => $group,
      config_file => '/etc/svn-stomp/svn-stomp.yaml',
      secrets     => $svn_bus['secrets'],
      config      => epp('deploykit/hook.yaml.epp', {
          'class'         => 'deploykit::hooks',
          'what'          => 'svn-stomp: the Subversion post-commit hook',
          'bus'           => $svn_bus['settings'],
          'trigger_topic' => $trigger_topic,
          'report_topic'  => $svn_report_topic,
          'settings'      => $spool + $svn_settings,
      }),
    }

    $svn_repositories.each |$path| {
      $install = ['/usr/bin/svn-stomp', '-c', '/etc/svn-stomp/svn-stomp.yaml', '--install', $path]
      exec { "deploykit: svn-stomp --install ${path}":
        command => $install,
        unless  => [$install + ['--check']],
        user    => $user,
        require => [Package[$package], File['/etc/svn-stomp/svn-stomp.yaml']],
      }
    }
  } elsif !$svn_repositories.empty {
    fail('deploykit::hooks: svn_repositories needs svn => true')
  }
}
