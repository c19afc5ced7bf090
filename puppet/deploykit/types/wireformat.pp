# What producers send: the original's bodies, deploykit's JSON events, or both.
type Deploykit::Wireformat = Enum['legacy', 'native', 'both']
