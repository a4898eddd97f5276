# Console d'administration, file des e-mails : chaque liste de messages en attente est paginée
ops-shown = { $shown } sur { $total } affichés, les plus proches de leur envoi d'abord.
