def forward(self, x):
    features_0_conv = getattr(self.features, "0").conv(x);  x = None
    features_0_bn = getattr(self.features, "0").bn(features_0_conv);  features_0_conv = None
    features_0_relu = torch.nn.functional.relu(features_0_bn);  features_0_bn = None
    features_0_pool = torch.nn.functional.max_pool2d(features_0_relu, kernel_size = 2, stride = 2, padding = 0, dilation = 1, ceil_mode = False);  features_0_relu = None
    features_1_conv = getattr(self.features, "1").conv(features_0_pool);  features_0_pool = None
    features_1_bn = getattr(self.features, "1").bn(features_1_conv);  features_1_conv = None
    features_1_relu = torch.nn.functional.relu(features_1_bn);  features_1_bn = None
    features_1_pool = torch.nn.functional.max_pool2d(features_1_relu, kernel_size = 2, stride = 2, padding = 0, dilation = 1, ceil_mode = False);  features_1_relu = None
    features_2_conv = getattr(self.features, "2").conv(features_1_pool);  features_1_pool = None
    features_2_bn = getattr(self.features, "2").bn(features_2_conv);  features_2_conv = None
    features_2_relu = torch.nn.functional.relu(features_2_bn);  features_2_bn = None
    features_2_pool = torch.nn.functional.max_pool2d(features_2_relu, kernel_size = 2, stride = 2, padding = 0, dilation = 1, ceil_mode = False);  features_2_relu = None
    flatten = torch.flatten(features_2_pool, 1, 3);  features_2_pool = None
    hidden_0_fc = getattr(self.hidden, "0").fc(flatten);  flatten = None
    hidden_0_relu = torch.nn.functional.relu(hidden_0_fc);  hidden_0_fc = None
    hidden_1_fc = getattr(self.hidden, "1").fc(hidden_0_relu);  hidden_0_relu = None
    hidden_1_relu = torch.nn.functional.relu(hidden_1_fc);  hidden_1_fc = None
    classifier = self.classifier(hidden_1_relu);  hidden_1_relu = None
    return classifier
