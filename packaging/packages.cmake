# The package table: one dk_package() per Debian package. Adding a binary is a data change here
# (see README.md, "Adding a binary"); packaging/CMakeLists.txt turns each entry into CPack settings,
# install rules (config, unit, man pages, docs) and maintainer scripts.
#
#   dk_package(<package>
#     BINARIES <bin>...          # targets whose install(TARGETS ... COMPONENT <package>) fill it
#     [DAEMON] [NOSPOOL]                 # the first binary is a daemon: unit packaging/systemd/<package>.service,
#                                # state /var/lib/<package>, spool /var/spool/deploykit/<package>
#     [USER <name>|root]         # a daemon's system user (created in postinst); root = none created
#     [CONFIGS <etc-path>...]    # conffiles, sources in packaging/etc/<etc-path>
#     [SECRETS <etc-path>...]    # created empty, 0600, owned by USER in postinst; never shipped
#     [DEPENDS <deb-dep>...] [RECOMMENDS ...] [SUGGESTS ...] [PROVIDES ...] [REPLACES ...] [BREAKS ...]
#     SUMMARY "<one line>" DESCRIPTION "<paragraph>")
#
# Man pages: packaging/man/<bin>.h2m for every binary (help2man's include format; section 8 for
# sbin daemons, 1 for the rest, from the binary's install directory in the table: DAEMON = first
# binary in sbin).

dk_package(stomp-git BINARIES stomp-git DAEMON USER root
  CONFIGS stomp-git/stomp-git.yaml
  SECRETS stomp-git/bus.passcode stomp-git/git.credentials
  RECOMMENDS openssh-client
  SUMMARY "deploykit: fetch git repositories when commits are announced on the bus"
  DESCRIPTION "stomp-git listens for commit events on a STOMP bus and fetches (and, per mode, checks out) the configured repositories as each repository's owner. It runs as root only to drop to those owners.")

dk_package(stomp-jenkins BINARIES stomp-jenkins DAEMON USER stomp-jenkins
  CONFIGS stomp-jenkins/stomp-jenkins.yaml
  SECRETS stomp-jenkins/bus.passcode stomp-jenkins/jenkins.credentials
  SUMMARY "deploykit: trigger Jenkins jobs for commits announced on the bus"
  DESCRIPTION "stomp-jenkins listens for commit events on a STOMP bus and triggers the Jenkins jobs configured for each repository, with crumbs, API tokens and retries, and reports the queued builds.")

dk_package(jenkins-helper BINARIES jenkins-helper
  CONFIGS jenkins-helper/jenkins-helper.yaml
  SUMMARY "deploykit: report Jenkins builds on the bus"
  DESCRIPTION "jenkins-helper is run from a Jenkins job (begin, success, failure) and publishes the build's outcome on the STOMP bus in the original deploykit's format.")

dk_package(github-webhook BINARIES github-webhook DAEMON USER github-webhook
  CONFIGS github-webhook/github-webhook.yaml
  SECRETS github-webhook/bus.passcode github-webhook/github.secret
  PROVIDES github-stomp REPLACES github-stomp BREAKS github-stomp
  SUMMARY "deploykit: forge webhooks to commit events on the bus"
  DESCRIPTION "github-webhook receives push webhooks from GitHub, GitLab, Gitea, Forgejo and Bitbucket, checks their secrets and publishes commit events on the STOMP bus. It replaces the original deploykit's github-stomp.")

dk_package(stomp-broker BINARIES stomp-broker DAEMON NOSPOOL USER stomp-broker
  CONFIGS stomp-broker/stomp-broker.yaml
  SECRETS stomp-broker/users.yaml
  SUMMARY "deploykit: embedded STOMP 1.0/1.1/1.2 broker"
  DESCRIPTION "stomp-broker is a single-machine STOMP broker with topics, queues, wildcard and durable subscriptions, a journal, users and TLS, following RabbitMQ's and ActiveMQ's conventions.")

dk_package(stompctl BINARIES stompctl
  SUMMARY "deploykit: publish to and subscribe from STOMP destinations"
  DESCRIPTION "stompctl sends and receives STOMP messages, signed or legacy deploykit events, and drains hook outboxes.")

dk_package(deploykit-hooks BINARIES stomp-post-receive svn-stomp
  CONFIGS stomp-postrec/stomp-postrec.yaml svn-stomp/svn-stomp.yaml
  SUGGESTS git subversion
  SUMMARY "deploykit: git and Subversion hooks that announce commits on the bus"
  DESCRIPTION "stomp-post-receive (git post-receive and post-commit) and svn-stomp (Subversion post-commit) publish commit events on the STOMP bus, spooling them when no broker is reachable.")

dk_package(stomp-repo BINARIES stomp-repo DAEMON USER root
  CONFIGS stomp-repo/stomp-repo.yaml
  SECRETS stomp-repo/bus.passcode
  SUMMARY "deploykit: refresh apt lists when a watched package is published"
  DESCRIPTION "stomp-repo listens for package events on the STOMP bus and runs a scoped apt-get update when a watched package gets a new version. It runs as root because apt-get update does.")

dk_package(repo-poller BINARIES repo-poller DAEMON USER repo-poller
  CONFIGS repo-poller/repo-poller.yaml
  SECRETS repo-poller/bus.passcode
  RECOMMENDS gpgv
  SUMMARY "deploykit: announce new package versions of Debian repositories"
  DESCRIPTION "repo-poller polls the InRelease files of Debian repositories and publishes package events for new versions, for repositories without a reprepro hook.")

dk_package(reprepro-stomp BINARIES reprepro-stomp
  CONFIGS reprepro-stomp/reprepro-stomp.yaml
  SUGGESTS reprepro
  SUMMARY "deploykit: reprepro notifier that announces packages on the bus"
  DESCRIPTION "reprepro-stomp is a reprepro Log: notifier: it publishes a package event once the new version is exported.")
