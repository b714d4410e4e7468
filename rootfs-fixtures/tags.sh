# Every tag the examples and tests name, per fixture layout (sourced by load.sh and
# registry.sh). The first is the layout's own; the others name the same image, as the
# seed's two-containers.yaml says `image: nginx` (nginx:latest) and some tests
# `image: busybox` (busybox:latest).
declare -A FIXTURE_TAGS=([busybox]="1.30 latest" [nginx]="1.17.1 latest" [debian]="latest")
