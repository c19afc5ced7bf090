# An absolute path made of safe characters only: it is given to commands (the hook's --install)
# and written into configs unquoted by nothing, so no spaces, quotes or shell metacharacters.
type Deploykit::Absolutepath = Pattern[/\A\/[A-Za-z0-9._\/+@-]*\z/]
