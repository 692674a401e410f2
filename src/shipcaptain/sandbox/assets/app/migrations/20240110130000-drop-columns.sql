-- contract: the previous release still reads legacy_owner
alter table canvases drop column legacy_owner;
