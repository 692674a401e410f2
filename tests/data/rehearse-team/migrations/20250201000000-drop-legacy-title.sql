-- contract: the notes app no longer reads legacy_title or legacy_tags
alter table notes drop column legacy_title;
alter table notes drop column legacy_tags;
