# @summary github-webhook: forge push webhooks (GitHub, GitLab, Gitea, Bitbucket) to commit
# events (the original's github-stomp).
#
# @param listen `ADDRESS:PORT` (the original's Sinatra port)
# @param hooks URL path => {provider, repos, refs, repo-name, ...} (docs/github-webhook.md)
# @param hook_secrets URL path => the webhook secret: written to `<config_dir>/<name>.secret`
#   (0600) and given to that hook as its `secret-file`
# @param user the daemon's user
# @param trigger_topic where commit events go
# @param report_topic where the one-liners go
# @param settings more keys (`tls-cert-file`, `allow-from`, `admin-listen`, ...)
# @param package the package
# @param config_dir the config directory
# @param manage_service overrides deploykit::manage_service
class deploykit::github_webhook (
  String[1] $listen = '127.0.0.1:4567',
  Hash[Pattern[/\A\/[A-Za-z0-9._\/-]*\z/], Hash[String[1], Data]] $hooks = {},
  Sensitive[Hash[Pattern[/\A\/[A-Za-z0-9._\/-]*\z/], String[1]]] $hook_secrets = Sensitive({}),
  String[1] $user = 'github-webhook',
  Deploykit::Topic $trigger_topic = 'future.git.commits',
  Deploykit::Topic $report_topic = 'future.events.stomp-git',
  Hash[String[1], Data] $settings = {},
  String[1] $package = 'github-webhook',
  Deploykit::Absolutepath $config_dir = '/etc/github-webhook',
  Optional[Boolean] $manage_service = undef,
) {
  include deploykit

  $bus = deploykit::bus($config_dir)
  # /github -> github.secret, /hooks/gitlab -> hooks_gitlab.secret
  $secret_files = Hash($hook_secrets.unwrap.map |$path, $secret| {
      $base = $path.regsubst(/\A\//, '').regsubst(/\//, '_', 'G')
      $file = $base ? {
        ''      => 'root',
        default => $base,
      }
      [$path, "${config_dir}/${file}.secret"]
  })
  $secrets = Hash($hook_secrets.unwrap.map |$path, $secret| { [$secret_files[$path], Sensitive("${secret}\n")] })
  $with_secrets = Hash($hooks.map |$path, $hook| {
      [$path, $secret_files[$path] ? { undef => $hook, default => $hook + { 'secret-file' => $secret_files[$path] } }]
  })

  package { $package:
    ensure => $deploykit::package_ensure,
  }

  deploykit::daemon { 'github-webhook':
    package        => $package,
    user           => $user,
    group          => $user,
    config_file    => "${config_dir}/github-webhook.yaml",
    secrets        => $bus['secrets'] + $secrets,
    service        => 'github-webhook',
    manage_service => $manage_service,
    config         => epp('deploykit/github-webhook.yaml.epp', {
        'bus'           => $bus['settings'],
        'trigger_topic' => $trigger_topic,
        'report_topic'  => $report_topic,
        'listen'        => $listen,
        'hooks'         => $with_secrets,
        'settings'      => $settings,
    }),
  }
}
