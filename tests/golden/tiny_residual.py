def forward(self, x):
    stem = self.stem(x);  x = None
    stage_0_conv1 = getattr(self.stage, "0").conv1(stem)
    stage_0_bn1 = getattr(self.stage, "0").bn1(stage_0_conv1);  stage_0_conv1 = None
    stage_0_relu = torch.nn.functional.relu(stage_0_bn1);  stage_0_bn1 = None
    stage_0_conv2 = getattr(self.stage, "0").conv2(stage_0_relu);  stage_0_relu = None
    stage_0_bn2 = getattr(self.stage, "0").bn2(stage_0_conv2);  stage_0_conv2 = None
    stage_0_add = stage_0_bn2 + stem;  stage_0_bn2 = stem = None
    stage_0_relu_1 = torch.nn.functional.relu(stage_0_add);  stage_0_add = None
    stage_1_conv1 = getattr(self.stage, "1").conv1(stage_0_relu_1)
    stage_1_bn1 = getattr(self.stage, "1").bn1(stage_1_conv1);  stage_1_conv1 = None
    stage_1_relu = torch.nn.functional.relu(stage_1_bn1);  stage_1_bn1 = None
    stage_1_conv2 = getattr(self.stage, "1").conv2(stage_1_relu);  stage_1_relu = None
    stage_1_bn2 = getattr(self.stage, "1").bn2(stage_1_conv2);  stage_1_conv2 = None
    stage_1_shortcut = getattr(self.stage, "1").shortcut(stage_0_relu_1);  stage_0_relu_1 = None
    stage_1_add = stage_1_bn2 + stage_1_shortcut;  stage_1_bn2 = stage_1_shortcut = None
    stage_1_relu_1 = torch.nn.functional.relu(stage_1_add);  stage_1_add = None
    branch = self.branch(stage_1_relu_1)
    merged = torch.cat([stage_1_relu_1, branch], dim = 1);  stage_1_relu_1 = branch = None
    pool = torch.nn.functional.adaptive_avg_pool2d(merged, (1, 1));  merged = None
    flatten = torch.flatten(pool, 1, 3);  pool = None
    dropout = self.dropout(flatten);  flatten = None
    fc = self.fc(dropout);  dropout = None
    return fc
