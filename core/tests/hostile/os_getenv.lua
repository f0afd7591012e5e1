-- Hostile: reaching os.getenv
return { route = function(conversation, candidates, ctx)
  return os.getenv('HOME')
end }
