-- Motifs de clôture en français, pour toutes les files.
return {
  reasons = {
    { code = "resolved", label = "Résolu" },
    { code = "follow_up", label = "Suivi nécessaire" },
    { code = "transferred", label = "Transféré" },
    { code = "no_response", label = "Pas de réponse du client" },
    { code = "other", label = "Autre" },
  },
}
