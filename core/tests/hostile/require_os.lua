-- Hostile: require of a standard module outside the tenant's scripts
return { route = function(conversation, candidates, ctx)
  local os = require 'os'
  return os.getenv('HOME')
end }
