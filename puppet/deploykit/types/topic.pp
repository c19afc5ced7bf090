# A bare topic name as the daemons read it (no '/', no spaces): future.git.commits
type Deploykit::Topic = Pattern[/\A[A-Za-z0-9._-]+\z/]
