-- expand: safe while the previous release runs
alter table canvases add column archived_at timestamptz;
alter table canvases add column owner_team text;
